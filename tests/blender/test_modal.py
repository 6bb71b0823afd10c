"""The UI (modal) paths of the operators, driven event by event as Blender's window manager would.

``window_driver`` explains the stand-ins. What is real: the operators' code, Blender's renders and render
handlers, the engine jobs and their threads, the files. The results must equal the blocking runs', and Esc,
the panel's Cancel button and errors must leave the scene as it was, the progress bar closed and the
add-on free for the next job.
"""

from __future__ import annotations

import dataclasses
import functools

import bpy
import cv2
import numpy as np
import pytest
import window_driver as wd
from blender_helpers import animated_rig, build_sphere, cad_scene, capture_room, render_settings, snapshot

from engine.imagefiles import read_exr
from engine.world import spatial_media

pytestmark = pytest.mark.timeout(240)


def operator(addon, module, name, **options):
    return wd.stand_in(getattr(functools.reduce(getattr, module.split("."), addon.operators), f"DIFFUSION3D_OT_{name}"), **options)


def pixels(path):
    """A PNG's pixels (Blender stamps each render's time into the file's metadata)."""
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def messages(op, kind):
    return [message for k, message in op.reports if k == kind]


# --- stereo video: one render job per frame, then the engine job --------------------------------------


def test_stereo_video_from_the_ui_renders_every_frame_then_tags_the_mp4(addon, monkeypatch, tmp_path):
    scene = animated_rig(tmp_path)
    before = render_settings()
    fake = wd.windowed(addon, monkeypatch)
    context = wd.Context()
    out = tmp_path / "ui.mp4"
    op = operator(addon, "stereo_video", "render_stereo_video", filepath=str(out), resolution="CUSTOM", eye_width=32)
    stages = []

    def event_at(step):
        stages.append(dataclasses.replace(addon.operators.machinery.job.current))
        return wd.MOUSE if step == 1 else wd.TIMER  # other events pass through

    assert wd.run(op, context, event_at) == {"FINISHED"}, op.reports
    frames = scene.frame_end - scene.frame_start + 1
    assert fake.render_jobs == frames
    assert stages[0].in_blender_stage and stages[0].label.startswith("Rendering stereo video")
    assert any(s.handle is not None and not s.in_blender_stage for s in stages), "the engine job ran after the frames"
    progress = context.window_manager.progress
    assert progress[:frames] == sorted(progress[:frames]) and progress[frames - 1] == 1000
    meta = spatial_media.read(out)
    assert (meta.frames, meta.width, meta.height, meta.stereo) == (frames, 32, 32, "top-bottom")
    assert not (tmp_path / "ui_frames").exists()
    assert render_settings() == before
    wd.assert_closed(addon, context)
    assert messages(op, "INFO") and messages(op, "INFO")[0].startswith(f"Wrote {out}")


@pytest.mark.parametrize("how", ["esc in the render window", "cancel button"])
def test_stereo_video_stopped_from_the_ui_keeps_the_frames(addon, monkeypatch, tmp_path, how):
    animated_rig(tmp_path)
    before = render_settings()
    wd.windowed(addon, monkeypatch, esc_on_render=3 if how.startswith("esc") else None)
    context = wd.Context()
    current = addon.operators.machinery.job.current

    def event_at(step):
        if how == "cancel button" and step == 1:
            current.request_cancel()  # after two frames
        return wd.TIMER

    op = operator(addon, "stereo_video", "render_stereo_video", filepath=str(tmp_path / "stop.mp4"), resolution="CUSTOM", eye_width=32)
    assert wd.run(op, context, event_at) == {"CANCELLED"}
    assert not (tmp_path / "stop.mp4").exists()
    assert sorted(p.name for p in (tmp_path / "stop_frames").iterdir()) == ["frame_0001.png", "frame_0002.png"]
    assert any("Stopped after 2 of" in m for m in messages(op, "WARNING"))
    assert render_settings() == before
    wd.assert_closed(addon, context)


def test_a_ui_render_that_ends_without_a_result_is_an_error_not_a_hang(addon, monkeypatch, tmp_path):
    animated_rig(tmp_path)
    before = render_settings()
    fake = wd.windowed(addon, monkeypatch)
    fake.ops.render.render = lambda *args, **kwargs: {"RUNNING_MODAL"}  # a render job that never reports its end
    context = wd.Context()
    op = operator(addon, "stereo_video", "render_stereo_video", filepath=str(tmp_path / "x.mp4"), resolution="CUSTOM", eye_width=32)
    assert wd.run(op, context) == {"CANCELLED"}
    assert messages(op, "ERROR") == ["A frame stopped without a result (see Blender's report)"]
    assert not (tmp_path / "x_frames").exists() and render_settings() == before
    wd.assert_closed(addon, context)


# --- capture: Blender's render job, then the engine job -------------------------------------------------


def test_capture_from_the_ui_equals_the_blocking_capture(addon, monkeypatch, tmp_path):
    capture_room()
    options = dict(width=64, samples=1, denoise=False, origin="CURSOR")
    assert bpy.ops.diffusion3d.capture_panorama(output_dir=str(tmp_path / "blocking"), **options) == {"FINISHED"}
    before = snapshot()
    fake = wd.windowed(addon, monkeypatch)
    context = wd.Context()
    op = operator(addon, "capture", "capture_panorama", output_dir=str(tmp_path / "ui"), **options)
    assert wd.run(op, context) == {"FINISHED"}, op.reports
    assert fake.render_jobs == 1
    ui_depth, blocking_depth = (read_exr(tmp_path / d / "depth.exr") for d in ("ui", "blocking"))
    assert ui_depth.keys() == blocking_depth.keys() and all(np.array_equal(ui_depth[k], blocking_depth[k]) for k in ui_depth)
    assert np.array_equal(pixels(tmp_path / "ui" / "rgb.png"), pixels(tmp_path / "blocking" / "rgb.png"))
    assert sorted(p.name for p in (tmp_path / "ui").iterdir()) == sorted(p.name for p in (tmp_path / "blocking").iterdir())
    assert snapshot()["objects"] == before["objects"] and bpy.context.scene.camera is None
    wd.assert_closed(addon, context)


@pytest.mark.parametrize("how", ["esc in the render window", "cancel button"])
def test_stopping_the_capture_render_changes_nothing(addon, monkeypatch, tmp_path, how):
    capture_room()
    scene = bpy.context.scene
    before, engine = snapshot(), scene.render.engine
    wd.windowed(addon, monkeypatch, esc_on_render=1 if how.startswith("esc") else None)
    context = wd.Context()
    current = addon.operators.machinery.job.current

    def event_at(step):
        if how == "cancel button" and step == 0:
            current.request_cancel()  # while the render job runs
        return wd.TIMER

    op = operator(addon, "capture", "capture_panorama", output_dir=str(tmp_path / "ui"), width=64, samples=1, origin="CURSOR")
    assert wd.run(op, context, event_at) == {"CANCELLED"}
    assert messages(op, "WARNING") == ["Capturing panorama: cancelled, nothing was changed"], op.reports
    assert not (tmp_path / "ui").exists()
    after = snapshot()
    assert after["objects"] == before["objects"] and after["cameras"] == before["cameras"]
    assert scene.render.engine == engine and scene.camera is None
    wd.assert_closed(addon, context)


# --- edge maps: one view per timer step, then the engine job ---------------------------------------------


def test_edge_maps_from_the_ui_equal_the_blocking_data_set(addon, monkeypatch, tmp_path):
    cad_scene()
    options = dict(views_per_object=2, resolution=64, samples=1, seed=5)
    assert bpy.ops.diffusion3d.render_edge_maps(dataset_dir=str(tmp_path / "blocking"), **options) == {"FINISHED"}
    before = snapshot()
    wd.windowed(addon, monkeypatch)
    context = wd.Context()
    op = operator(addon, "dst.dataset", "render_edge_maps", dataset_dir=str(tmp_path / "ui"), **options)
    assert wd.run(op, context) == {"FINISHED"}, op.reports
    progress = context.window_manager.progress
    assert progress[:4] == [250, 500, 750, 1000]
    for name in ("annotations.json", "dataset.json"):
        ui, blocking = (tmp_path / d / name for d in ("ui", "blocking"))
        assert ui.read_text().replace(str(tmp_path / "ui"), "") == blocking.read_text().replace(str(tmp_path / "blocking"), "")
    for sub in ("images", "edges", "masks"):
        ui_files = sorted((tmp_path / "ui" / sub).iterdir())
        assert [p.name for p in ui_files] == [p.name for p in sorted((tmp_path / "blocking" / sub).iterdir())]
        assert all(np.array_equal(pixels(p), pixels(tmp_path / "blocking" / sub / p.name)) for p in ui_files)
    after = snapshot()
    assert {k: v for k, v in after.items() if k != "images"} == {k: v for k, v in before.items() if k != "images"}
    wd.assert_closed(addon, context)


def test_esc_between_edge_map_views_stops_cleanly(addon, monkeypatch, tmp_path):
    cad_scene()
    before = snapshot()
    wd.windowed(addon, monkeypatch)
    context = wd.Context()
    op = operator(addon, "dst.dataset", "render_edge_maps", dataset_dir=str(tmp_path / "ui"), views_per_object=2, resolution=64, samples=1)
    assert wd.run(op, context, lambda step: wd.ESC if step == 1 else wd.TIMER) == {"CANCELLED"}
    after = snapshot()
    assert after["scenes"] == before["scenes"] and after["objects"] == before["objects"]
    assert not (tmp_path / "ui").exists()
    wd.assert_closed(addon, context)


# --- an engine-only job: submit, poll on timers, write Blender data ------------------------------------


def test_world_sphere_from_the_ui_equals_the_blocking_one(addon, monkeypatch, tmp_path):
    blocking = build_sphere(tmp_path / "a")
    wd.windowed(addon, monkeypatch)
    context = wd.Context()
    op = operator(
        addon,
        "world_sphere",
        "build_world_sphere",
        rgb_path=str(tmp_path / "a" / "rgb.png"),
        depth_path=str(tmp_path / "a" / "depth.npy"),
        grid_step=1,
    )
    assert wd.run(op, context) == {"FINISHED"}, op.reports
    ui = bpy.context.view_layer.objects.active
    assert ui is not blocking and ui.name.startswith(blocking.name.split(".")[0])

    def coords(obj):
        out = np.empty(len(obj.data.vertices) * 3, np.float32)
        obj.data.vertices.foreach_get("co", out)
        return out

    assert np.array_equal(coords(ui), coords(blocking))
    assert context.window_manager.progress and max(context.window_manager.progress) <= 1000
    wd.assert_closed(addon, context)
