"""Exporting a world: every file read back by a reader nobody here wrote (pygltflib, usd-core's pxr, plyfile, Blender's
own glTF importer), the same bytes for the same request, nothing half-written and the scene as it was."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest
from blender_helpers import animated_rig, snapshot
from plyfile import PlyData
from support import read_usd
from test_world_sphere import smooth_depth, write_pair

pytestmark = pytest.mark.timeout(120)

H, W = 32, 64


def world(tmp_path: Path, step: int = 1) -> bpy.types.Object:
    rgb, depth = write_pair(tmp_path / "panorama", smooth_depth())
    assert bpy.ops.diffusion3d.build_world_sphere(rgb_path=rgb, depth_path=depth, grid_step=step) == {"FINISHED"}
    return bpy.context.view_layer.objects.active


def gltf_vertices(rows: int, cols: int) -> int:
    """What a glTF holds of a world sphere grid: a vertex per (position, UV) pair, the seam's column twice, a pole per column."""
    return rows * (cols + 1) + 2 * cols


def blend_data() -> dict[str, int]:
    return {name: len(getattr(bpy.data, name)) for name in ("objects", "meshes", "materials", "scenes", "images", "cameras", "actions")}


@pytest.mark.parametrize("file_format", ["GLB", "GLTF"])
def test_a_gltf_holds_the_sphere_its_unlit_panorama_and_the_rigs_camera_path_as_readers_see_them(tmp_path, file_format):
    import pygltflib

    animated_rig(tmp_path)
    sphere = next(o for o in bpy.context.scene.objects if o.get("diffusion3d_world") is not None)
    rows, cols = sphere["diffusion3d_world"]["grid"]
    before, scene = blend_data(), snapshot()
    out = tmp_path / "out" / ("world.glb" if file_format == "GLB" else "world.gltf")
    out.parent.mkdir()
    assert bpy.ops.diffusion3d.export_world(filepath=str(out), object_name=sphere.name) == {"FINISHED"}
    assert blend_data() == before and snapshot() == scene, "the export's scene and copies are gone"
    gltf = pygltflib.GLTF2().load(str(out))
    (mesh,) = gltf.meshes
    (primitive,) = mesh.primitives
    assert gltf.accessors[primitive.attributes.POSITION].count == gltf_vertices(rows, cols)
    assert gltf.accessors[primitive.attributes.TEXCOORD_0].count == gltf_vertices(rows, cols)
    assert gltf.accessors[primitive.indices].count == 3 * (2 * (rows - 1) * cols + 2 * cols), "quads as two triangles, pole fans"
    (material,) = gltf.materials
    assert "KHR_materials_unlit" in material.extensions and material.pbrMetallicRoughness.baseColorTexture is not None
    (image,) = gltf.images
    if file_format == "GLTF":
        assert image.uri == "textures/rgb.png" and (out.parent / "textures" / "rgb.png").is_file() and (out.parent / "world.bin").is_file()
    else:
        assert image.bufferView is not None and sorted(p.name for p in out.parent.iterdir()) == ["world.glb"]
    (camera_node,) = [n for n in gltf.nodes if n.camera is not None]
    (animation,) = gltf.animations
    animated = {gltf.nodes[c.target.node].name for c in animation.channels}
    assert animated & {
        camera_node.name,
        *(gltf.nodes[i].name for i, n in enumerate(gltf.nodes) if gltf.nodes.index(camera_node) in (n.children or [])),
    }
    assert gltf.accessors[animation.samplers[0].input].count == bpy.context.scene.frame_end - bpy.context.scene.frame_start + 1
    # Blender's own importer reads the same
    bpy.ops.wm.read_homefile(use_empty=True)
    assert bpy.ops.import_scene.gltf(filepath=str(out)) == {"FINISHED"}
    (imported,) = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    assert len(imported.data.vertices) == gltf_vertices(rows, cols) and len(imported.data.polygons) == 2 * (rows - 1) * cols + 2 * cols
    assert any(o.type == "CAMERA" for o in bpy.context.scene.objects)


def test_the_same_export_gives_the_same_bytes_and_an_existing_file_is_replaced_only_when_asked(tmp_path):
    world(tmp_path)
    out = tmp_path / "world.glb"
    assert bpy.ops.diffusion3d.export_world(filepath=str(out)) == {"FINISHED"}
    first, stamp = out.read_bytes(), out.stat().st_mtime_ns
    assert str(tmp_path).encode() not in first, "no paths of this machine in the file"
    with pytest.raises(RuntimeError, match="already exists"):
        bpy.ops.diffusion3d.export_world(filepath=str(out))
    assert out.stat().st_mtime_ns == stamp
    assert bpy.ops.diffusion3d.export_world(filepath=str(out), overwrite=True) == {"FINISHED"}
    assert out.read_bytes() == first
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())


def current_umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_target_face_count_keeps_every_kth_row_and_column_of_the_grid(tmp_path):
    import pygltflib

    sphere = world(tmp_path)
    out = tmp_path / "small.glb"
    target = 600
    assert bpy.ops.diffusion3d.export_world(filepath=str(out), target_faces=target) == {"FINISHED"}
    gltf = pygltflib.GLTF2().load(str(out))
    primitive = gltf.meshes[0].primitives[0]
    rows, cols = H // 2, W // 2  # 16 × 32 = 544 faces ≤ 600 (the full 32 × 64 grid has 2,112)
    assert gltf.accessors[primitive.attributes.POSITION].count == gltf_vertices(rows, cols)
    assert len(sphere.data.polygons) == (H + 1) * W, "the sphere in the scene keeps every face"


@pytest.mark.parametrize("file_format", ["USDZ", "USDC"])
def test_usd_holds_the_sphere_and_its_texture_as_pxr_reads_them(tmp_path, file_format):
    animated_rig(tmp_path)
    before = blend_data()
    out = tmp_path / "out" / f"world.{file_format.lower()}"
    out.parent.mkdir()
    assert bpy.ops.diffusion3d.export_world(filepath=str(out), format=file_format) == {"FINISHED"}
    assert blend_data() == before
    stage = read_usd(out)
    assert stage["mesh_points"] == [H * W + 2]
    assert stage["textures"] and stage["textures"][0].endswith("rgb.png")
    assert stage["cameras"] and stage["animated"], "the rig's camera path is animated"
    if file_format == "USDC":
        assert (out.parent / "textures" / "rgb.png").is_file()
    else:
        assert sorted(p.name for p in out.parent.iterdir()) == ["world.usdz"]


def test_splats_of_a_world_are_its_panoramas_as_the_splats_job_makes_them(tmp_path):
    sphere = world(tmp_path, step=2)
    out = tmp_path / "world.ply"
    assert bpy.ops.diffusion3d.export_world(filepath=str(out), splat_step=1) == {"FINISHED"}
    ply = PlyData.read(str(out))
    assert ply["vertex"].count == H * W and ply["vertex"].properties[0].name == "x"
    centres = np.stack([ply["vertex"][k] for k in "xyz"], axis=1)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1).reshape(H, W), smooth_depth(), rtol=1e-5)
    assert sphere.name in bpy.context.scene.objects


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"filepath": "{tmp}/missing/w.glb"}, "no such folder"),
        ({"filepath": "{tmp}/w.obj"}, "its extension names no format"),
        ({"filepath": "{tmp}/w.glb", "format": "USDZ"}, "ends in .usdz"),
        ({"filepath": "{tmp}/w.glb", "target_faces": 10_000}, "above World Sphere's 2,112 faces"),
        ({"filepath": "{tmp}/w.glb", "target_faces": 5}, "keeps at least 12 faces"),
        ({"filepath": "{tmp}/w.glb", "object_name": "Nope"}, "No object named 'Nope'"),
    ],
)
def test_bad_exports_are_refused_in_one_line_writing_nothing(tmp_path, options, words):
    world(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises((RuntimeError, TypeError), match=words):
        bpy.ops.diffusion3d.export_world(**{k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in options.items()})
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_splats_need_the_panoramas_as_files_and_say_how_to_give_them(tmp_path):
    sphere = world(tmp_path)
    sphere["diffusion3d_world"]["rgb"] = "Render Result"
    with pytest.raises(RuntimeError, match=r"as a file.*batch\.py splats --rgb RGB --depth DEPTH"):
        bpy.ops.diffusion3d.export_world(filepath=str(tmp_path / "w.ply"))
    assert not (tmp_path / "w.ply").exists()


def test_the_object_views_quick_mesh_exports_with_its_vertex_colours_and_refuses_a_target(tmp_path, addon):
    import pygltflib

    bpy.ops.mesh.primitive_ico_sphere_add(subdivisions=2)
    hull = bpy.context.view_layer.objects.active
    colours = np.linspace(0, 1, 3 * len(hull.data.vertices)).reshape(-1, 3)
    addon.operators.machinery.blender_data.vertex_colour_material("Views hull", hull.data, colours)  # as generate_views colours it
    out = tmp_path / "hull.glb"
    assert bpy.ops.diffusion3d.export_world(filepath=str(out)) == {"FINISHED"}
    gltf = pygltflib.GLTF2().load(str(out))
    primitive = gltf.meshes[0].primitives[0]
    assert primitive.attributes.COLOR_0 is not None and gltf.materials[0].name == "Views hull"
    with pytest.raises(RuntimeError, match="not a world sphere"):
        bpy.ops.diffusion3d.export_world(filepath=str(tmp_path / "small.glb"), target_faces=40)


def test_an_exporter_failing_halfway_leaves_no_file_and_the_world_as_it_was(tmp_path, addon, monkeypatch):
    animated_rig(tmp_path)
    sphere = next(o for o in bpy.context.scene.objects if o.get("diffusion3d_world") is not None)
    out = tmp_path / "out"
    out.mkdir()
    before, scene, materials = blend_data(), snapshot(), [m.name for m in sphere.data.materials]

    def half_written(chosen, path, animated):
        path.write_bytes(b"glTF half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(addon.operators.export, "_export", half_written)
    with pytest.raises(RuntimeError, match="No space left on device"):
        bpy.ops.diffusion3d.export_world(filepath=str(out / "world.glb"), target_faces=500)
    assert list(out.iterdir()) == [] and blend_data() == before and snapshot() == scene
    assert [m.name for m in sphere.data.materials] == materials and len(sphere.data.polygons) == (H + 1) * W
    assert bpy.context.window.scene == bpy.context.scene and not addon.operators.machinery.job.current.busy()
