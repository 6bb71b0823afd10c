"""An unexpected error in any step of any job ends that job: one readable report, the scene and its
settings as they were, nothing half-built, and the add-on free for the next job.

Each case breaks one step (as Blender 5's renamed enums once broke the stereo-video encoder, which
left the add-on "busy" until Blender restarted), then runs the operator from a script (blocking)
and from the UI (modal, driven event by event), and finally runs the same job unbroken.
"""

from __future__ import annotations

import functools

import bpy
import pytest

import window_driver as wd
from blender_helpers import animated_rig, build_sphere, cad_scene, capture_room, render_settings, snapshot

pytestmark = pytest.mark.timeout(240)

INJECTED = "injected failure"


def boom(*_args, **_kwargs):
    raise RuntimeError(INJECTED)


def capture_scene(tmp_path):
    capture_room()
    return dict(output_dir=str(tmp_path / "out"), width=32, samples=1, denoise=False, origin="CURSOR")


def video_rig(tmp_path):
    animated_rig(tmp_path)
    return dict(filepath=str(tmp_path / "out.mp4"), resolution="CUSTOM", eye_width=16)


def dst_scene(tmp_path):
    cad_scene()
    return dict(dataset_dir=str(tmp_path / "out"), views_per_object=1, resolution=32, samples=1)


def sphere_files(tmp_path):
    build_sphere(tmp_path / "src")
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    return dict(rgb_path=str(tmp_path / "src" / "rgb.png"), depth_path=str(tmp_path / "src" / "depth.npy"), grid_step=1)


# (operator module, operator, scene set-up, what to break: a method of the operator or a module function)
CASES = [
    ("capture", "capture_panorama", capture_scene, "_stage"),
    ("capture", "capture_panorama", capture_scene, "_start_render"),
    ("capture", "capture_panorama", capture_scene, "_after_render"),
    ("capture", "capture_panorama", capture_scene, "finish"),
    ("stereo_video", "render_stereo_video", video_rig, "_stage"),
    ("stereo_video", "render_stereo_video", video_rig, "_render_next"),
    ("stereo_video", "render_stereo_video", video_rig, "encode_frames"),
    ("stereo_video", "render_stereo_video", video_rig, "finish"),
    ("dst.dataset", "render_edge_maps", dst_scene, "_build_scene"),
    ("dst.dataset", "render_edge_maps", dst_scene, "_render_one"),
    ("dst.dataset", "render_edge_maps", dst_scene, "_request"),
    ("dst.dataset", "render_edge_maps", dst_scene, "finish"),
    ("world_sphere", "build_world_sphere", sphere_files, "prepare"),
    ("world_sphere", "build_world_sphere", sphere_files, "emission_material"),
    ("world_sphere", "build_world_sphere", sphere_files, "poll"),
]


def break_step(addon, monkeypatch, module_name, op_name, step):
    module = functools.reduce(getattr, module_name.split("."), addon.operators)
    op_class = getattr(module, f"DIFFUSION3D_OT_{op_name}")
    if step == "poll":  # the engine job's progress cannot be read
        monkeypatch.setattr(addon.engine.client.JobHandle, "poll", boom)
    elif hasattr(op_class, step):
        monkeypatch.setattr(op_class, step, boom)
    else:
        monkeypatch.setattr(module, step, boom)
    return op_class


def state():
    """What a failed job must leave as it found: datablocks (Blender's own render result aside), render settings, the camera."""
    blocks = snapshot()
    blocks["images"].discard("Render Result")
    return blocks, render_settings()


@pytest.mark.parametrize("module_name, op_name, setup, step", CASES, ids=[f"{c[1]}-{c[3]}" for c in CASES])
@pytest.mark.parametrize("path", ["blocking", "ui"])
def test_a_failing_step_ends_the_job_cleanly_and_frees_the_add_on(addon, monkeypatch, tmp_path, module_name, op_name, setup, step, path):
    options = setup(tmp_path)
    before = state()
    with monkeypatch.context() as broken:
        op_class = break_step(addon, broken, module_name, op_name, step)
        if path == "blocking":
            with pytest.raises(RuntimeError, match=f"failed: RuntimeError: {INJECTED}"):
                getattr(bpy.ops.diffusion3d, op_name)(**options)
        else:
            windowed = pytest.MonkeyPatch()
            try:
                wd.windowed(addon, windowed)
                context = wd.Context()
                op = wd.stand_in(op_class, **options)
                assert wd.run(op, context) == {"CANCELLED"}
                errors = [m for kind, m in op.reports if kind == "ERROR"]
                assert len(errors) == 1 and f"failed: RuntimeError: {INJECTED}" in errors[0], op.reports
                wd.assert_closed(addon, context)
            finally:
                windowed.undo()
    assert state() == before, "the scene is as it was"
    assert not addon.operators.machinery.session.busy()
    out = tmp_path / "out"
    if step != "finish":  # after the engine's part, its files are whole and stay; before it, nothing is written
        assert not out.exists() or not any(p.suffix in (".mp4", ".json", ".exr") for p in out.rglob("*")), "nothing half-written"
    if (tmp_path / "out_frames").exists():  # frames rendered before the failure are kept, as after a cancel
        assert all(p.name.startswith("frame_") for p in (tmp_path / "out_frames").iterdir())
    assert getattr(bpy.ops.diffusion3d, op_name)(**{**options, "overwrite": True} if op_name != "build_world_sphere" else options) == {"FINISHED"}
