"""Capture a room of known geometry; the world sphere built from it lies on the room's surfaces."""

import json
import os

import bpy
import numpy as np
import pytest
from blender_helpers import add_box, set_image_format, snapshot
from support import cpu_load, run_metadata, tree

from engine.imagefiles import read_exr

pytestmark = pytest.mark.timeout(300)

ROOM_LO, ROOM_HI = np.array([-4.0, -3.0, 0.0]), np.array([4.0, 3.0, 3.0])
PILLAR_LO, PILLAR_HI = np.array([-2.5, 1.0, 0.0]), np.array([-1.5, 2.0, 3.0])
EYE = (1.1, -0.7, 1.3)


def box_sdf(p, lo, hi):
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    q = np.abs(p - centre) - half
    return np.linalg.norm(np.maximum(q, 0), axis=-1) + np.minimum(q.max(axis=-1), 0)


def surface_distance(p):
    return np.minimum(np.abs(box_sdf(p, ROOM_LO, ROOM_HI)), np.abs(box_sdf(p, PILLAR_LO, PILLAR_HI)))


@pytest.fixture
def room():
    add_box("Room", tuple(ROOM_LO), tuple(ROOM_HI))
    add_box("Pillar", tuple(PILLAR_LO), tuple(PILLAR_HI))
    bpy.context.scene.cursor.location = EYE


@pytest.fixture
def captured(room, tmp_path):
    out = tmp_path / "cap"
    assert bpy.ops.diffusion3d.capture_panorama(output_dir=str(out), width=256, samples=1, denoise=False, origin="CURSOR") == {"FINISHED"}
    return out


def test_capture_writes_files_and_loads_images(captured):
    assert sorted(p.name for p in captured.iterdir()) == ["depth.exr", "depth16.png", "meta.json", "rgb.png"]
    meta = json.loads((captured / "meta.json").read_text())
    assert (meta["width"], meta["height"]) == (256, 128)
    assert meta["origin"] == pytest.approx(list(EYE))
    assert meta["near"] > 0 and meta["far"] > meta["near"] and meta["scene"] == bpy.context.scene.name
    names = {img.name: img for img in bpy.data.images}
    rgb, depth = names["cap rgb"], names["cap depth"]
    assert tuple(rgb.size) == (256, 128) and tuple(depth.size) == (256, 128)
    assert depth.colorspace_settings.name == "Non-Color"
    assert bpy.context.scene.diffusion3d.last_capture == str(captured)


def test_a_capture_under_cpu_load_gives_the_same_bytes_and_no_file_says_when_or_where(captured, tmp_path):
    out = tmp_path / "loaded"
    with cpu_load(2):
        assert bpy.ops.diffusion3d.capture_panorama(output_dir=str(out), width=256, samples=1, denoise=False, origin="CURSOR") == {
            "FINISHED"
        }
    first, loaded = tree(captured), tree(out)
    assert first.keys() == loaded.keys() and all(first[name] == loaded[name] for name in first), [
        n for n in first if first[n] != loaded.get(n)
    ]
    assert {name: run_metadata(captured / name) for name in ("rgb.png", "depth16.png", "depth.exr")} == {
        "rgb.png": {},
        "depth16.png": {},
        "depth.exr": {},
    }
    assert {(p.name, p.stat().st_mode & 0o777) for p in captured.iterdir()} == {(n, 0o666 & ~current_umask()) for n in first}


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_depth_is_ray_distance_in_the_engine_convention(captured):
    depth = read_exr(captured / "depth.exr")["Y"]
    h, w = depth.shape
    # Centre column looks along +X: the +X wall is 4 - 1.1 away; straight up the ceiling is 3 - 1.3.
    assert depth[h // 2, w // 2] == pytest.approx(ROOM_HI[0] - EYE[0], rel=0.02)
    assert np.median(depth[0]) == pytest.approx(ROOM_HI[2] - EYE[2], rel=0.02)
    # u = 0.25 looks along +Y (the +Y wall is 3 + 0.7 away); u = 0 / 1 along -X (4 + 1.1).
    assert depth[h // 2, w // 4] == pytest.approx(ROOM_HI[1] - EYE[1], rel=0.02)
    assert depth[h // 2, 0] == pytest.approx(EYE[0] - ROOM_LO[0], rel=0.02)


@pytest.mark.parametrize("output", ["JPEG", "FFMPEG"])  # FFMPEG: a video media type in Blender 5
def test_scene_settings_and_camera_are_restored(room, tmp_path, output):
    scene = bpy.context.scene
    user_cam = bpy.data.objects.new("User Camera", bpy.data.cameras.new("User Camera"))
    scene.collection.objects.link(user_cam)
    scene.camera = user_cam
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 640, 480, 50
    set_image_format(scene.render.image_settings, output)
    scene.render.film_transparent = True
    scene.cycles.samples = 77
    bpy.context.view_layer.use_pass_z = False
    before = snapshot()
    bpy.ops.diffusion3d.capture_panorama(output_dir=str(tmp_path / "c"), width=64, samples=1, origin="CURSOR")
    assert scene.camera == user_cam and scene.render.engine == "BLENDER_WORKBENCH"
    assert (scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage) == (640, 480, 50)
    assert scene.render.image_settings.file_format == output and scene.render.film_transparent
    assert scene.cycles.samples == 77 and not bpy.context.view_layer.use_pass_z
    after = snapshot()
    assert after["objects"] == before["objects"] and after["cameras"] == before["cameras"]  # temporary camera gone


@pytest.mark.timeout(300)
def world_vertices(obj: bpy.types.Object) -> np.ndarray:
    verts = np.empty(len(obj.data.vertices) * 3, np.float32)
    obj.data.vertices.foreach_get("co", verts)
    matrix = np.array(obj.matrix_world, np.float64)
    return verts.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def test_metric_world_sphere_lies_on_the_scene_surfaces(captured):
    assert bpy.ops.diffusion3d.build_world_sphere(
        rgb_path=str(captured / "rgb.png"), depth_path=str(captured / "depth.exr"), depth_mode="METRIC", grid_step=1
    ) == {"FINISHED"}
    obj = bpy.context.view_layer.objects.active
    assert obj.name == "World Sphere" and tuple(obj.location) == pytest.approx(EYE)  # where the capture was taken
    error = surface_distance(world_vertices(obj))
    room_size = float(np.max(ROOM_HI - ROOM_LO))
    assert error.mean() < 0.01 * room_size, f"mean distance to the surfaces {error.mean():.4f}"
    grid = error[:-2].reshape(128, 256)
    assert grid[:, [0, -1]].mean() < 0.01 * room_size, "seam columns"
    assert error[-2:].max() < 0.01 * room_size, "pole vertices"
    assert np.median(error) < 0.002 * room_size


def test_a_sphere_from_a_capture_goes_to_the_capture_origin_and_the_rig_follows(room, tmp_path):
    """The defect a new user met: captured from a camera off the origin, the sphere sat at (0, 0, 0), 1.08 m off the walls."""
    scene = bpy.context.scene
    camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(camera)
    scene.camera, camera.location = camera, (1.5, 0.8, 1.5)
    scene.cursor.location = (-3.0, -2.0, 0.5)  # not where anything should go
    out = tmp_path / "cap"
    assert bpy.ops.diffusion3d.capture_panorama(output_dir=str(out), width=256, samples=1, denoise=False) == {"FINISHED"}
    assert bpy.ops.diffusion3d.build_world_sphere(name="From Last Capture", place="CURSOR") == {"FINISHED"}  # Auto: depth.exr is metric
    assert bpy.ops.diffusion3d.build_world_sphere(
        rgb_path=str(out / "rgb.png"), depth_path=str(out / "depth.exr"), depth_mode="METRIC", name="From Files"
    ) == {"FINISHED"}
    room_size = float(np.max(ROOM_HI - ROOM_LO))
    for name in ("From Last Capture", "From Files"):
        sphere = bpy.data.objects[name]
        assert tuple(sphere.location) == pytest.approx((1.5, 0.8, 1.5))
        error = surface_distance(world_vertices(sphere))
        assert np.median(error) < 0.002 * room_size and error.mean() < 0.01 * room_size, f"{name}: {error.mean():.4f} m off"
    bpy.context.view_layer.objects.active = bpy.data.objects["From Files"]
    assert bpy.ops.diffusion3d.add_stereo_rig() == {"FINISHED"}
    rig = bpy.context.view_layer.objects.active
    assert tuple(rig.location) == pytest.approx((1.5, 0.8, 1.5))


def test_relative_inverse_depth16_rebuilds_the_metric_sphere(captured):
    meta = json.loads((captured / "meta.json").read_text())
    kw = dict(rgb_path=str(captured / "rgb.png"), grid_step=2)
    bpy.ops.diffusion3d.build_world_sphere(depth_path=str(captured / "depth.exr"), depth_mode="METRIC", name="Metric", **kw)
    bpy.ops.diffusion3d.build_world_sphere(
        depth_path=str(captured / "depth16.png"),
        depth_mode="RELATIVE",
        relative_mapping="INVERSE",
        near=meta["near"],
        far=meta["far"],
        name="Relative",
        **kw,
    )
    a, b = (bpy.data.objects[n].data for n in ("Metric", "Relative"))
    va, vb = (np.array([v.co for v in m.vertices]) for m in (a, b))
    np.testing.assert_allclose(np.linalg.norm(vb, axis=1), np.linalg.norm(va, axis=1), rtol=3e-3)


def test_empty_scene_is_refused_and_nothing_is_written(tmp_path):
    before = snapshot()
    with pytest.raises(RuntimeError, match="Nothing to capture"):
        bpy.ops.diffusion3d.capture_panorama(output_dir=str(tmp_path / "c"), width=64)
    assert snapshot() == before and not (tmp_path / "c").exists()


def test_existing_outputs_are_kept(room, tmp_path):
    out = tmp_path / "c"
    out.mkdir()
    (out / "rgb.png").write_bytes(b"precious")
    before = snapshot()
    with pytest.raises(RuntimeError, match="already holds rgb.png"):
        bpy.ops.diffusion3d.capture_panorama(output_dir=str(out), width=64, samples=1, origin="CURSOR")
    assert (out / "rgb.png").read_bytes() == b"precious" and sorted(p.name for p in out.iterdir()) == ["rgb.png"]
    after = snapshot()
    assert after["objects"] == before["objects"] and after["cameras"] == before["cameras"]
    assert bpy.ops.diffusion3d.capture_panorama(output_dir=str(out), width=64, samples=1, origin="CURSOR", overwrite=True) == {"FINISHED"}
    assert (out / "rgb.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"width": 63}, "Width 63: must be even, 16–16384"),
        ({"width": 8}, "Width 8: must be even, 16–16384"),
        ({"samples": 0}, "Samples"),
        ({"origin": "CAMERA"}, "no active camera"),
    ],
)
def test_bad_capture_settings(room, tmp_path, kwargs, words):
    before = snapshot()
    with pytest.raises(RuntimeError, match=words):
        bpy.ops.diffusion3d.capture_panorama(output_dir=str(tmp_path / "c"), **{"width": 64, "samples": 1, "origin": "CURSOR", **kwargs})
    assert snapshot() == before and not (tmp_path / "c").exists()


def test_output_folder_that_is_a_file(room, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RuntimeError, match="is a file"):
        bpy.ops.diffusion3d.capture_panorama(output_dir=str(blocker), width=64, samples=1, origin="CURSOR")
    assert blocker.read_text() == "x"


def test_modal_capture_parts_restore_the_scene_and_see_the_render_end(addon, room, tmp_path):
    """The UI path splits the capture across event-loop steps; its parts run here without a window."""
    render_setup = addon.operators.machinery.render_setup
    scene = bpy.context.scene
    scene.render.engine, scene.render.resolution_x = "BLENDER_WORKBENCH", 640
    before = snapshot()
    setup = render_setup.PanoramaSetup(scene, (0.0, 0.0, 1.0), 64, 1, False)
    setup.apply()
    assert scene.camera.name.startswith("Diffusion3D") and scene.render.engine == "CYCLES"
    render_setup.watch_render(True)
    try:
        bpy.ops.render.render()
        assert render_setup.render_state() == "COMPLETE" and not bpy.app.is_job_running("RENDER")
    finally:
        render_setup.watch_render(False)
        setup.undo()
        setup.undo()  # a second undo (discard after a failure) changes nothing
    assert all(h not in bpy.app.handlers.render_complete for _, h in render_setup._RENDER_HANDLERS)
    assert scene.render.engine == "BLENDER_WORKBENCH" and scene.render.resolution_x == 640 and scene.camera is None
    after = snapshot()
    assert after["objects"] == before["objects"] and after["cameras"] == before["cameras"]


def test_a_blender_stage_in_flight_keeps_other_jobs_out(addon, room, tmp_path):
    current = addon.operators.machinery.job.current
    current.start_stage("Rendering panorama")
    try:
        with pytest.raises(RuntimeError, match="busy \\(Rendering panorama\\)"):
            bpy.ops.diffusion3d.capture_panorama(output_dir=str(tmp_path / "c"), width=64, samples=1, origin="CURSOR")
    finally:
        current.clear()
    assert not (tmp_path / "c").exists()
