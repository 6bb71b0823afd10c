"""ViewNeTI in Blender: posed training sets rendered from the scene, their cameras checked against Blender's own projection."""

import json
import math

import bpy
import numpy as np
import pytest
from blender_helpers import add_box, render_settings, snapshot
from bpy_extras.object_utils import world_to_camera_view
from mathutils import Matrix, Vector
from support import build_tiny, engine_python, models_here

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.warm_engine]


def training_views(tmp_path, **kw):
    options = dict(output_dir=str(tmp_path / "set"), views=4, width=64, height=48, samples=1)
    return bpy.ops.diffusion3d.render_training_views(**{**options, **kw})


def test_training_views_of_the_selection_carry_cameras_that_project_like_blenders_own(tmp_path):
    box = add_box("Toy", (1.0, -0.5, 0.0), (1.6, 0.1, 0.8))
    box.select_set(True)
    before, settings = snapshot(), render_settings()
    assert training_views(tmp_path, layout="ORBIT", elevation=math.radians(20.0))  # an angle property: radians == {"FINISHED"}
    after = snapshot()
    after["images"].discard("Render Result")  # Blender's own
    assert after == before and render_settings() == settings, "the user's scene is as it was"
    posed = json.loads((tmp_path / "set" / "cameras.json").read_text())
    assert (posed["width"], posed["height"], len(posed["images"])) == (64, 48, 4)
    assert posed["target"] == pytest.approx([1.3, -0.2, 0.4])
    corners = [box.matrix_world @ Vector(c) for c in box.bound_box]
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 64, 48
    camera = bpy.data.objects.new("check", bpy.data.cameras.new("check"))
    scene.collection.objects.link(camera)
    camera.data.sensor_fit, camera.data.angle = "VERTICAL", np.radians(40.0)
    for entry in posed["images"]:
        assert (tmp_path / "set" / entry["file"]).is_file()
        camera.matrix_world = Matrix(entry["camera_to_world"])
        bpy.context.view_layer.update()
        p = np.array(entry["dtu12"]).reshape(3, 4)
        for corner in corners:
            x = p @ np.append(np.array(corner), 1.0)
            blender = world_to_camera_view(scene, camera, corner)  # (0, 0) bottom left, (1, 1) top right
            np.testing.assert_allclose(x[:2] / x[2], [blender.x * 64, (1 - blender.y) * 48], atol=1e-3)
        assert entry["spherical"][2] == pytest.approx(20.0, abs=1e-6), "the orbit's elevation reads back"


def test_a_solid_background_is_composited_and_the_whole_scene_renders_when_nothing_is_selected(tmp_path):
    from diffusion3d.engine.imagefiles import read_png

    add_box("Crate", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5))
    assert training_views(tmp_path, layout="HEMISPHERE", seed=3, transparent=False, background=(1.0, 0.0, 1.0)) == {"FINISHED"}
    posed = json.loads((tmp_path / "set" / "cameras.json").read_text())
    assert posed["objects"] == ["Crate"] and posed["layout"] == "HEMISPHERE"
    image = read_png(tmp_path / "set" / posed["images"][0]["file"])
    assert image.shape == (48, 64, 3) and tuple(image[0, 0]) == (255, 0, 255)
    assert all(0 <= 90 - e["spherical"][2] <= 90 for e in posed["images"]), "every camera is in the upper hemisphere"


def test_an_empty_scene_and_an_existing_set_are_refused_and_nothing_changes(tmp_path):
    with pytest.raises(RuntimeError, match="Nothing to render"):
        training_views(tmp_path)
    add_box("Crate", (0.0, 0.0, 0.0), (0.5, 0.5, 0.5))
    assert training_views(tmp_path) == {"FINISHED"}
    before = {p: p.read_bytes() for p in (tmp_path / "set").rglob("*") if p.is_file()}
    with pytest.raises(RuntimeError, match="already holds"):
        training_views(tmp_path)
    assert {p: p.read_bytes() for p in (tmp_path / "set").rglob("*") if p.is_file()} == before


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_tiny("tiny_viewneti:build_tiny_sd2", tmp_path_factory.mktemp("models") / "tiny-sd2")


@pytest.fixture
def trained(prefs, base, tmp_path):
    """A tiny checkpoint trained on renders of a box by the operator, as users train."""
    prefs.device = "CPU"
    if not models_here():
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", engine_python()
    add_box("Toy", (0.0, 0.0, 0.0), (0.5, 0.4, 0.8)).select_set(True)
    assert training_views(tmp_path, views=3, width=128, height=64) == {"FINISHED"}
    options = dict(
        data_dir=str(tmp_path / "set"), model=str(base), output_dir=str(tmp_path / "ckpt"), steps=2, width=128, height=64, save_every=1
    )
    assert bpy.ops.diffusion3d.train_viewneti(**options) == {"FINISHED"}
    info = json.loads((tmp_path / "ckpt" / "viewneti.json").read_text())
    assert info["steps_done"] == 2 and info["cameras"]["kind"] == "SPHERICAL" and len(info["losses"]) == 2
    return tmp_path / "ckpt"


def test_a_checkpoint_renders_the_active_camera_and_every_frame_of_an_animated_one(trained, base, tmp_path):
    scene = bpy.context.scene
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.location, camera.rotation_euler = (0.3, -2.5, 0.6), (np.radians(85), 0.0, 0.0)
    options = dict(checkpoint=str(trained), model=str(base), width=128, height=64, steps=2)
    assert bpy.ops.diffusion3d.generate_view(**options, output_dir=str(tmp_path / "one")) == {"FINISHED"}
    assert (tmp_path / "one" / "Cam.png").is_file() and (tmp_path / "one" / "render.json").is_file()
    assert any(image.filepath.endswith("Cam.png") for image in bpy.data.images)
    scene.frame_start, scene.frame_end = 1, 2
    camera.keyframe_insert("location", frame=1)
    camera.location.x = 0.8
    camera.keyframe_insert("location", frame=2)
    assert bpy.ops.diffusion3d.generate_view(**options, animation=True, output_dir=str(tmp_path / "anim")) == {"FINISHED"}
    meta = json.loads((tmp_path / "anim" / "render.json").read_text())
    assert [v["file"] for v in meta["views"]] == ["frame_0001.png", "frame_0002.png"]
    assert meta["views"][0]["camera_to_world"] != meta["views"][1]["camera_to_world"]
    assert scene.frame_current == 1, "the current frame is put back"


def test_no_camera_or_no_checkpoint_is_refused_in_one_line(trained, base, tmp_path):
    with pytest.raises(RuntimeError, match="no active camera"):
        bpy.ops.diffusion3d.generate_view(checkpoint=str(trained), model=str(base))
    bpy.context.scene.camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    bpy.context.scene.collection.objects.link(bpy.context.scene.camera)
    with pytest.raises(RuntimeError, match="Checkpoint .*: no such folder"):
        bpy.ops.diffusion3d.generate_view(checkpoint=str(tmp_path / "nothing"), model=str(base), output_dir=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_pre_training_reads_every_posed_set_in_a_folder_and_one_image_becomes_views_from_the_active_camera(prefs, base, tmp_path):
    prefs.device = "CPU"
    if not models_here():
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", engine_python()
    box = add_box("Toy", (0.0, 0.0, 0.0), (0.5, 0.4, 0.8))
    box.select_set(True)
    for name, elevation in (("a", 10.0), ("b", 25.0)):
        assert training_views(
            tmp_path, output_dir=str(tmp_path / "sets" / name), views=2, width=128, height=64, elevation=math.radians(elevation)
        ) == {"FINISHED"}
    options = dict(model=str(base), steps=1, width=128, height=64, save_every=1)
    assert bpy.ops.diffusion3d.train_viewneti(
        mode="PRETRAIN", data_dir=str(tmp_path / "sets"), output_dir=str(tmp_path / "pre"), **options
    ) == {"FINISHED"}
    info = json.loads((tmp_path / "pre" / "viewneti.json").read_text())
    assert info["mode"] == "PRETRAIN" and [o["name"] for o in info["objects"]] == ["a", "b"]

    scene = bpy.context.scene
    camera = bpy.data.objects.new("Cam", bpy.data.cameras.new("Cam"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    camera.location, camera.rotation_euler = (0.3, -2.5, 0.6), (np.radians(85), 0.0, 0.0)
    image = tmp_path / "sets" / "a" / "images" / "000.png"
    views = dict(image=str(image), view_mapper=str(tmp_path / "pre"), model=str(base), fit_steps=1, width=128, height=64, steps=1)
    assert bpy.ops.diffusion3d.views_from_image(**views, output_dir=str(tmp_path / "views")) == {"FINISHED"}
    assert (tmp_path / "views" / "Cam.png").is_file() and (tmp_path / "views" / "fit" / "checkpoint" / "viewneti.json").is_file()
    assert any(image.filepath.endswith("Cam.png") for image in bpy.data.images)
    with pytest.raises(RuntimeError, match="Choose the object's image"):
        bpy.ops.diffusion3d.views_from_image(**{**views, "image": ""}, output_dir=str(tmp_path / "none"))
    assert not (tmp_path / "none").exists()
