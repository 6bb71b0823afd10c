"""generate_panorama in Blender: tiny random-weight LDM3D models, real operators, both engine modes.

Where Blender's Python has no torch (the Blender 5.2 environment), the jobs run
in the subprocess engine with the engine's own Python, as users run them.
"""

import json

import bpy
import numpy as np
import pytest
import window_driver as wd
from blender_helpers import add_box, snapshot
from support import build_tinies, engine_python, models_here

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]  # every test runs tiny models (seconds each)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tinies(
        ("tiny_ldm3d:build_tiny_ldm3d", root / "tiny-ldm3d-4c", {"vae_channels": 4}),
        ("tiny_ldm3d:build_tiny_ldm3d", root / "tiny-ldm3d", {"vae_channels": 6, "seed": 1}),
    )
    return root


@pytest.fixture
def model_prefs(prefs, models):
    prefs.models_dir = str(models)
    prefs.hf_cache_dir = str(models / "no-cache")
    if not models_here():
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", engine_python()
    return prefs


def needs_models_here():
    if not models_here():
        pytest.skip("in-process model jobs need torch in Blender's Python")


def generate(tmp_path, **kw):
    options = dict(prompt="a cosy room", model="tiny-ldm3d-4c", width=64, height=32, steps=2, output_dir=str(tmp_path / "gen"))
    return bpy.ops.diffusion3d.generate_panorama(**{**options, **kw})


def test_text_to_panorama_writes_files_and_builds_the_world_sphere(model_prefs, tmp_path):
    assert generate(tmp_path, seed=4) == {"FINISHED"}
    out = tmp_path / "gen"
    assert sorted(p.name for p in out.iterdir()) == ["depth.npy", "depth16.png", "meta.json", "rgb.png"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 4 and meta["seamless"] is True and meta["model"] == "tiny-ldm3d-4c"
    world = bpy.data.objects["Generated World"]
    assert world["diffusion3d_world"]["depth_mode"] == "RELATIVE"
    assert len(world.data.vertices) > 0
    assert bpy.context.scene.diffusion3d.last_generation == str(out)
    assert "gen rgb" in bpy.data.images


def test_flat_images_build_no_sphere_and_six_channel_models_work(model_prefs, tmp_path):
    before = snapshot()
    assert generate(tmp_path, model="tiny-ldm3d", projection="FLAT", width=32, height=32) == {"FINISHED"}
    assert snapshot()["objects"] == before["objects"]
    meta = json.loads((tmp_path / "gen" / "meta.json").read_text())
    assert meta["kind"] == "rgbd6" and meta["seamless"] is False and meta["projection"] == "flat"


def test_img2img_from_the_last_capture(model_prefs, tmp_path):
    add_box("Room", (-4, -3, 0), (4, 3, 3))
    bpy.context.scene.cursor.location = (0.5, 0.2, 1.5)
    bpy.ops.diffusion3d.capture_panorama(output_dir=str(tmp_path / "cap"), width=64, samples=1, denoise=False, origin="CURSOR")
    assert generate(tmp_path, init="LAST_CAPTURE", strength=0.0, build_sphere=False) == {"FINISHED"}
    meta = json.loads((tmp_path / "gen" / "meta.json").read_text())
    assert meta["img2img"] is True and meta["strength"] == 0.0


def test_bad_requests_leave_nothing_behind(model_prefs, tmp_path):
    before = snapshot()
    cases = [
        (dict(width=60), "Width 60: must be 0, or 8–8192, a multiple of 8"),
        (dict(prompt=""), "needs a prompt"),
        (dict(model="nothing-here"), "not found"),
        (dict(init="LAST_CAPTURE"), "no last capture"),
        (
            dict(init="FILES", init_rgb_path=str(tmp_path / "missing.png"), init_depth_path=str(tmp_path / "d.png")),
            "Init RGB .*missing.png': no such file",
        ),
    ]
    for kw, words in cases:
        with pytest.raises(RuntimeError, match=words):
            generate(tmp_path, **kw)
    assert snapshot() == before
    assert not (tmp_path / "gen").exists()


def test_works_in_the_subprocess_engine(model_prefs, tmp_path):
    needs_models_here()
    model_prefs.engine_mode = "SUBPROCESS"
    model_prefs.python_path = ""  # Blender's own Python, which has torch in the test environment
    assert generate(tmp_path, build_sphere=False, seed=9) == {"FINISHED"}
    model_prefs.engine_mode = "IN_PROCESS"
    assert generate(tmp_path / "again", build_sphere=False, seed=9) == {"FINISHED"}
    assert (tmp_path / "gen" / "depth16.png").read_bytes() == (tmp_path / "again" / "gen" / "depth16.png").read_bytes()


def ui_generate(addon, tmp_path, **kw):
    options = dict(
        prompt="a cosy room", model="tiny-ldm3d-4c", width=64, height=32, steps=2, output_dir=str(tmp_path / "ui"), build_sphere=False
    )
    return wd.stand_in(addon.operators.ldm3d.DIFFUSION3D_OT_generate_panorama, **{**options, **kw})


def test_generation_from_the_ui_shows_live_previews_and_equals_the_blocking_run(addon, model_prefs, monkeypatch, tmp_path):
    assert generate(tmp_path, build_sphere=False, seed=9) == {"FINISHED"}
    wd.windowed(addon, monkeypatch)
    context = wd.Context()
    op = ui_generate(addon, tmp_path, seed=9)
    previews = []

    def event_at(step):
        previews.append("Diffusion3D Preview" in bpy.data.images)
        return wd.TIMER

    assert wd.run(op, context, event_at) == {"FINISHED"}, op.reports
    assert (tmp_path / "ui" / "depth16.png").read_bytes() == (tmp_path / "gen" / "depth16.png").read_bytes()
    assert any(previews) and "Diffusion3D Preview" not in bpy.data.images  # shown while it ran, gone after
    assert context.window_manager.progress[-1] == 1000
    wd.assert_closed(addon, context)


@pytest.mark.parametrize("mode", ["IN_PROCESS", "SUBPROCESS"])
def test_esc_during_generation_changes_nothing(addon, model_prefs, monkeypatch, tmp_path, mode):
    if mode == "IN_PROCESS":
        needs_models_here()
    model_prefs.engine_mode, model_prefs.python_path = mode, engine_python() if mode == "SUBPROCESS" else ""
    before = snapshot()
    wd.windowed(addon, monkeypatch)
    context = wd.Context()
    op = ui_generate(addon, tmp_path, steps=20)
    assert wd.run(op, context, lambda step: wd.ESC if step == 0 else wd.TIMER) == {"CANCELLED"}
    assert [m for kind, m in op.reports] == ["Generating panorama: cancelled, nothing was changed"]
    assert not (tmp_path / "ui").exists()
    assert snapshot() == before
    wd.assert_closed(addon, context)


def test_model_picker_and_seed_dice(model_prefs):
    assert bpy.ops.diffusion3d.find_models() == {"FINISHED"}
    found = {m.name: m.kind for m in bpy.context.window_manager.diffusion3d_models}
    assert found == {str(model_prefs.models_dir) + "/tiny-ldm3d": "rgbd6", str(model_prefs.models_dir) + "/tiny-ldm3d-4c": "rgbd4"}
    settings = bpy.context.scene.diffusion3d.generate
    seeds = set()
    for _ in range(3):
        bpy.ops.diffusion3d.random_seed()
        seeds.add(settings.seed)
    assert len(seeds) > 1 and all(0 <= s < 2**31 for s in seeds)


def test_live_preview_image_is_written_in_bulk_and_removed(addon):
    preview = addon.operators.machinery.live_preview
    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[0, :, 0] = 255  # top row red
    image = preview.show(pixels)
    values = np.empty(8 * 4 * 4, np.float32)
    image.pixels.foreach_get(values)
    rows = values.reshape(4, 8, 4)[::-1]
    assert tuple(image.size) == (8, 4) and rows[0, 0, 0] == 1.0 and rows[1, 0, 0] == 0.0
    preview.show(np.zeros((8, 16, 3), np.uint8))  # a new size reuses the image
    assert tuple(bpy.data.images[preview.NAME].size) == (16, 8)
    preview.clear()
    assert preview.NAME not in bpy.data.images
