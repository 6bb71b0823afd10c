"""Upscaling in Blender: generate_panorama(upscale="2") and upscale_panorama on the last generation, the last capture or files,
with tiny random models in LDM3D's and LDM3D-sr's published layouts (in the engine's Python where Blender's has no torch)."""

import json

import bpy
import pytest
from blender_helpers import snapshot
from support import build_tinies, engine_python, models_here

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow, pytest.mark.warm_engine]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    build_tinies(
        ("tiny_ldm3d:build_tiny_ldm3d", root / "tiny-ldm3d-4c", {"vae_channels": 4}),
        ("tiny_ldm3d:build_tiny_ldm3d_sr", root / "tiny-ldm3d-sr", {}),
    )
    return root


@pytest.fixture
def model_prefs(prefs, models):
    prefs.models_dir, prefs.hf_cache_dir, prefs.device = str(models), str(models / "no-cache"), "CPU"
    if not models_here():
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", engine_python()
    return prefs


def generate(tmp_path, **kw):
    options = dict(prompt="a cosy room", model="tiny-ldm3d-4c", width=64, height=32, steps=2, output_dir=str(tmp_path / "gen"))
    return bpy.ops.diffusion3d.generate_panorama(**{**options, **kw})


def test_a_generated_panorama_upscales_in_one_run_and_its_world_sphere_uses_the_large_one(model_prefs, tmp_path):
    assert generate(tmp_path, upscale="2", upscaler="tiny-ldm3d-sr") == {"FINISHED"}
    out = tmp_path / "gen"
    meta = json.loads((out / "meta.json").read_text())
    assert (meta["width"], meta["height"], meta["upscale"]["scale"]) == (128, 64, 2)
    assert sorted(p.name for p in (out / "base").iterdir()) == ["depth.npy", "depth16.png", "rgb.png"]
    assert tuple(bpy.data.images["gen rgb"].size) == (128, 64)
    assert bpy.data.objects["Generated World"]["diffusion3d_world"]["depth_mode"] == "RELATIVE"


def test_the_last_generation_upscales_and_becomes_the_last_generation(model_prefs, tmp_path):
    assert generate(tmp_path, build_sphere=False) == {"FINISHED"}
    options = dict(model="tiny-ldm3d-sr", steps=2, build_sphere=False, output_dir=str(tmp_path / "up"))
    assert bpy.ops.diffusion3d.upscale_panorama(source="LAST_GENERATION", **options) == {"FINISHED"}
    meta = json.loads((tmp_path / "up" / "meta.json").read_text())
    assert (meta["width"], meta["height"], meta["seamless"]) == (128, 64, True)
    assert meta["upscaled_from"]["rgb"] == "../gen/rgb.png"
    assert bpy.context.scene.diffusion3d.last_generation == str(tmp_path / "up") and "up rgb" in bpy.data.images


def test_a_missing_input_is_refused_in_one_line_and_changes_nothing(model_prefs, tmp_path):
    bpy.context.scene.diffusion3d.last_capture = ""
    before = snapshot()
    with pytest.raises(RuntimeError, match="There is no last capture to upscale"):
        bpy.ops.diffusion3d.upscale_panorama(source="LAST_CAPTURE", output_dir=str(tmp_path / "a"))
    with pytest.raises(RuntimeError, match="Choose the RGB image and its depth"):
        bpy.ops.diffusion3d.upscale_panorama(source="FILES", output_dir=str(tmp_path / "b"))
    assert snapshot() == before and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_model_picker_offers_the_upscaler_to_the_upscale_box_only(model_prefs):
    assert bpy.ops.diffusion3d.find_models() == {"FINISHED"}
    window = bpy.context.window_manager
    assert [m.name.rsplit("/", 1)[-1] for m in window.diffusion3d_upscalers] == ["tiny-ldm3d-sr"]
    assert [m.name.rsplit("/", 1)[-1] for m in window.diffusion3d_models] == ["tiny-ldm3d-4c"]
