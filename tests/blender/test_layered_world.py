"""A layered world in Blender: the background sphere whole, each foreground layer its own mesh parented to it, wearing
its packed texture with a fading alpha; the rig and the exports take it as they take a single sphere."""

from __future__ import annotations

import bpy
import numpy as np
import pytest
from blender_helpers import snapshot
from test_layers import H, W, box_in_a_room, room

from engine.imagefiles import write_exr, write_png
from engine.world.layers import grow

pytestmark = pytest.mark.timeout(120)


def files(tmp_path, rgb, distance):
    write_png(tmp_path / "rgb.png", np.round(rgb.clip(0, 1) * 255).astype(np.uint8))
    write_exr(tmp_path / "depth.exr", {"Y": distance.astype(np.float32)})
    return dict(rgb_path=str(tmp_path / "rgb.png"), depth_path=str(tmp_path / "depth.exr"), grid_step=1, min_region=16, border=2)


def test_two_layers_make_the_background_whole_and_the_box_its_own_mesh_with_a_fading_edge(tmp_path):
    rgb, distance, box = box_in_a_room()
    assert bpy.ops.diffusion3d.build_world_sphere(**files(tmp_path, rgb, distance), layers=2) == {"FINISHED"}
    world = bpy.context.view_layer.objects.active
    (layer,) = world.children
    assert world["diffusion3d_world"]["layers"] == 1 and layer["diffusion3d_layer"] == 1 and layer.name == "World Sphere Layer 1"
    assert len(world.data.polygons) == (H + 1) * W and layer.name in bpy.context.scene.objects
    hole = grow(box, 2)
    assert len(layer.data.vertices) == int(hole.sum())
    co = np.empty(len(layer.data.vertices) * 3, np.float32)
    layer.data.vertices.foreach_get("co", co)
    np.testing.assert_allclose(np.linalg.norm(co.reshape(-1, 3), axis=1), 1.2, rtol=1e-5)
    images = {n.image.name: n.image for o in (world, layer) for n in o.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE"}
    assert set(images) == {"World Sphere Background", "World Sphere Layer 1"} and all(i.packed_file is not None for i in images.values())
    alpha = np.empty(W * H * 4, np.float32)
    images["World Sphere Layer 1"].pixels.foreach_get(alpha)
    alpha = alpha.reshape(H, W, 4)[::-1, :, 3]
    assert np.all(alpha[box] == 1) and np.all(alpha[~hole] == 0)
    assert any(n.type == "BSDF_TRANSPARENT" for n in layer.data.materials[0].node_tree.nodes)
    # the stereo rig takes it as a single sphere
    assert bpy.ops.diffusion3d.add_stereo_rig() == {"FINISHED"}


def test_a_panorama_without_depth_edges_builds_the_plain_sphere(tmp_path):
    rgb, distance = room()
    assert bpy.ops.diffusion3d.build_world_sphere(**files(tmp_path, rgb, distance), layers=2) == {"FINISHED"}
    world = bpy.context.view_layer.objects.active
    assert list(world.children) == [] and world["diffusion3d_world"]["layers"] == 0
    assert not any(i.name.endswith("Background") for i in bpy.data.images)


def test_a_layered_world_exports_its_layers_unlit_with_their_alpha_and_stays_as_it_was(tmp_path):
    import pygltflib

    rgb, distance, _ = box_in_a_room()
    bpy.ops.diffusion3d.build_world_sphere(**files(tmp_path, rgb, distance), layers=2)
    before = snapshot()
    out = tmp_path / "world.glb"
    assert bpy.ops.diffusion3d.export_world(filepath=str(out)) == {"FINISHED"}
    assert snapshot() == before
    gltf = pygltflib.GLTF2().load(str(out))
    assert len(gltf.meshes) == 2 and len(gltf.images) == 2
    assert all("KHR_materials_unlit" in m.extensions for m in gltf.materials)
    assert sorted(m.alphaMode for m in gltf.materials) == ["BLEND", "OPAQUE"]


def test_build_layered_world_takes_two_layers_by_default_into_a_collection_of_its_own(tmp_path):
    rgb, distance, _ = box_in_a_room()
    assert bpy.ops.diffusion3d.build_layered_world(**files(tmp_path, rgb, distance)) == {"FINISHED"}
    world = bpy.context.view_layer.objects.active
    (layer,) = world.children
    collection = bpy.data.collections["Layered World"]
    assert world.name == "Layered World" and set(collection.objects) == {world, layer}
    assert collection.name in bpy.context.scene.collection.children and set(world.users_collection) == {collection}


@pytest.mark.slow
def test_an_ldm3d_model_paints_the_background_behind_the_box_the_same_way_twice(tmp_path, prefs, tmp_path_factory):
    from support import build_tiny, engine_python, models_here

    models = tmp_path_factory.mktemp("models")
    build_tiny("tiny_ldm3d:build_tiny_ldm3d", models / "tiny-ldm3d-4c", vae_channels=4)
    prefs.models_dir, prefs.hf_cache_dir = str(models), str(models / "no-cache")
    if not models_here():
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", engine_python()
    rgb, distance, box = box_in_a_room()
    options = dict(**files(tmp_path, rgb, distance), inpaint_model="tiny-ldm3d-4c", steps=2, inpaint_width=128, prompt="a room")
    painted = []
    for name in ("First", "Second"):
        assert bpy.ops.diffusion3d.build_layered_world(**options, name=name) == {"FINISHED"}
        pixels = np.empty(W * H * 4, np.float32)
        bpy.data.images[f"{name} Background"].pixels.foreach_get(pixels)
        painted.append(pixels.reshape(H, W, 4)[::-1, :, :3])
    assert np.array_equal(painted[0], painted[1])
    outside = ~grow(box, 2)
    np.testing.assert_allclose(painted[0][outside], rgb[outside], atol=1 / 255 + 1e-6)  # the panorama, through its 8-bit file
    with pytest.raises(RuntimeError, match="Inpaint Model"):
        bpy.ops.diffusion3d.build_world_sphere(**options)  # one layer: nothing to paint behind


def test_the_demo_keeps_its_single_sphere_and_says_why_when_the_layers_refuse_its_panorama(addon, tmp_path):
    """Four boxes cover 69% of the panorama: the layers refuse it in one line and nothing of a layered world is made."""
    rgb, distance = room()
    for start in (0, 24, 48, 72):
        distance[4:44, start : start + 20] = 1.0
    build = files(tmp_path, rgb, distance)
    assert bpy.ops.diffusion3d.build_world_sphere(**build) == {"FINISHED"}
    sphere, before = bpy.context.view_layer.objects.active, snapshot()
    from diffusion3d.operators.demo.run import layered_world  # the demo's own, as batch.py imports it

    kept, why = layered_world(sphere, dict(build, layers=2, reach=1.0))
    assert kept is sphere and not sphere.hide_render and snapshot() == before
    assert why.startswith("The foreground would cover 69% of the panorama") and "\n" not in why
