"""The ``upscale_rgbd`` job: files in, files out as every RGBD job writes them, and bad input refused before any model work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_clip import embedding_lookups, read_clip_words  # noqa: E402
from tiny_ldm3d import build_tiny_ldm3d, build_tiny_ldm3d_sr  # noqa: E402

from engine.diffusion.sources import ModelAccess  # noqa: E402
from engine.errors import BadInput  # noqa: E402
from engine.imagefiles import read_png, write_png  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.progress import CancelToken  # noqa: E402
from engine.world.upscale import UpscaleRequest, read_low_res, upscale_projection  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    return build_tiny_ldm3d_sr(tmp_path_factory.mktemp("models") / "tiny-ldm3d-sr")


def panorama(folder: Path, width: int = 96, height: int = 48, depth_dtype=np.uint16) -> tuple[Path, Path]:
    """An LDM3D-style pair: rgb.png and a 16-bit disparity depth16.png (or 8-bit, or float distances as .npy)."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.linspace(0, 1, width)[None, :, None]
    rgb = np.round(np.broadcast_to(x, (height, width, 3)) * 255).astype(np.uint8)
    write_png(folder / "rgb.png", rgb)
    near = np.linspace(0.2, 0.9, height)[:, None] * np.ones((1, width))
    if depth_dtype == np.float32:
        np.save(folder / "depth.npy", (1 / near).astype(np.float32))
        return folder / "rgb.png", folder / "depth.npy"
    top = np.iinfo(depth_dtype).max
    write_png(folder / "depth16.png", np.round(near * top).astype(depth_dtype))
    return folder / "rgb.png", folder / "depth16.png"


def request(upscaler, rgb, depth, out, **kw) -> UpscaleRequest:
    options = dict(steps=2, guidance=5.0, seed=3, access=ModelAccess(device="CPU"))
    return UpscaleRequest(str(rgb), str(depth), str(out), model=str(upscaler), **{**options, **kw})


def run(r):
    return run_job("upscale_rgbd", r, lambda p: None, CancelToken())


def test_a_panorama_and_its_16_bit_depth_come_out_twice_the_size_as_every_rgbd_job_writes_them(upscaler, tmp_path):
    rgb, depth = panorama(tmp_path / "in")
    seen = []
    with embedding_lookups() as lookups:
        result = run_job("upscale_rgbd", request(upscaler, rgb, depth, tmp_path / "out"), seen.append, CancelToken())
    assert read_clip_words(lookups, "quality", "resolution", "image"), "the model card's prompt through CLIP's real tokenizer"
    assert (result.width, result.height, result.windows) == (192, 96, 1) and not result.warnings
    assert seen[-1].done == seen[-1].total and [p.done for p in seen] == sorted(p.done for p in seen)
    assert set(result.paths) == {"rgb.png", "depth16.png", "depth.npy", "meta.json"}
    assert read_png(result.paths["rgb.png"]).shape == (96, 192, 3)
    depth16 = read_png(result.paths["depth16.png"])
    assert depth16.shape[:2] == (96, 192) and depth16.dtype == np.uint16
    disparity = np.load(result.paths["depth.npy"])
    assert disparity.shape == (96, 192) and disparity.min() >= 0 and disparity.max() <= 1
    meta = json.loads(Path(result.paths["meta.json"]).read_text())
    assert meta["seamless"] and meta["upscaled_from"]["width"] == 96 and meta["kind"] == "rgbd-sr"
    reason = "a 2:1 image (96×48) without a meta.json: taken for a 360° panorama"
    assert (
        (result.projection, result.projection_reason)
        == ("EQUIRECTANGULAR", reason)
        == (meta["projection"].upper(), meta["projection_reason"])
    )
    again = run(request(upscaler, rgb, depth, tmp_path / "again"))
    assert Path(again.paths["rgb.png"]).read_bytes() == Path(result.paths["rgb.png"]).read_bytes(), "a seed reproduces"
    windowed = run(request(upscaler, rgb, depth, tmp_path / "windows", window=64, overlap=16))
    assert windowed.windows == 8 and json.loads(Path(windowed.paths["meta.json"]).read_text())["windows"] == 8  # 2 rows × 4 round


def test_an_8_bit_depth_is_converted_with_a_warning_and_distances_as_for_img2img(upscaler, tmp_path):
    rgb, depth = panorama(tmp_path / "in8", depth_dtype=np.uint8)
    result = run(request(upscaler, rgb, depth, tmp_path / "out8"))
    assert result.warnings and "8-bit" in result.warnings[0] and "16-bit" in result.warnings[0]
    rgb, depth = panorama(tmp_path / "metric", depth_dtype=np.float32)
    assert run(request(upscaler, rgb, depth, tmp_path / "outm", scale=1.0)).width == 96


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(scale=1.5, size=(100, 50)), "must be multiples of 8"),
        (dict(other_size_depth=True), "The depth is 48×24 but the RGB is 96×48"),
        (dict(size=(96, 64), projection="EQUIRECTANGULAR"), "is 2:1"),
        (dict(noise_level=400), "Noise Level 400: must be 0–350"),
        (dict(generator=True), "upscaler's UNet reads 8 channels"),
        (dict(window=60), "Window 60: must be 64–8192, a multiple of 8"),
    ],
)
def test_bad_input_is_refused_in_one_line_before_anything_is_written(upscaler, tmp_path, change, message):
    size = change.pop("size", (96, 48))
    rgb, depth = panorama(tmp_path / "in", *size)
    if change.pop("other_size_depth", False):
        _, depth = panorama(tmp_path / "small", 48, 24)
    model = build_tiny_ldm3d(tmp_path / "generator") if change.pop("generator", False) else upscaler
    with pytest.raises(BadInput, match=message):
        run(request(model, rgb, depth, tmp_path / "out", **change))
    assert not (tmp_path / "out").exists()


def test_a_size_beyond_the_devices_memory_is_refused_with_one_that_fits(upscaler, tmp_path, monkeypatch):
    import engine.world.upscale as job

    monkeypatch.setattr(job, "total_memory", lambda device: 200 * 2**20)
    rgb, depth = panorama(tmp_path / "in")
    with pytest.raises(BadInput, match=r"needs about .* GiB .* \d+×\d+ would fit"):
        run(request(upscaler, rgb, depth, tmp_path / "out", scale=8.0, vae_tiling=False))
    assert not (tmp_path / "out").exists()


def test_existing_outputs_are_kept(upscaler, tmp_path):
    rgb, depth = panorama(tmp_path / "in")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "rgb.png").write_bytes(b"mine")
    with pytest.raises(BadInput, match="exist"):
        run(request(upscaler, rgb, depth, tmp_path / "out"))
    assert (tmp_path / "out" / "rgb.png").read_bytes() == b"mine"


def test_the_model_listing_tells_the_upscaler_from_the_generators_and_generation_refuses_it(upscaler, tmp_path):
    from engine.world.ldm3d import RGBDRequest
    from engine.world.model_listing import ModelsRequest

    listed = run_job("list_models", ModelsRequest(ModelAccess(str(upscaler.parent))), lambda p: None, CancelToken())
    assert dict(zip(listed.sources, listed.kinds))[str(upscaler)] == "rgbd-sr"
    with pytest.raises(BadInput, match="is an RGBD upscaler"):
        run_job("generate_rgbd", RGBDRequest("a room", str(upscaler), str(tmp_path / "out")), lambda p: None, CancelToken())


def test_a_generated_panorama_chains_into_the_upscaler_and_keeps_its_base(upscaler, tmp_path):
    from engine.world.ldm3d import RGBDRequest

    generator = build_tiny_ldm3d(tmp_path / "generator", vae_channels=4)
    options = dict(
        prompt="a cosy room", model=str(generator), width=64, height=32, steps=2, seed=11, upscale_steps=2, upscaler=str(upscaler)
    )
    seen = []
    result = run_job("generate_rgbd", RGBDRequest(out_dir=str(tmp_path / "out"), upscale=2, count=2, **options), seen.append, CancelToken())
    assert (result.width, result.height, result.upscale) == (128, 64, 2) and len(result.paths) == 2
    for sample in result.paths:
        assert read_png(sample["rgb.png"]).shape == (64, 128, 3)
        folder = Path(sample["meta.json"]).parent
        assert read_png(folder / "base" / "rgb.png").shape == (32, 64, 3) and (folder / "base" / "depth16.png").is_file()
        meta = json.loads(Path(sample["meta.json"]).read_text())
        assert meta["width"] == 128 and meta["upscale"]["scale"] == 2 and meta["upscale"]["windows"] == 1
    assert seen[-1].done == seen[-1].total, "one bar through generation and upscaling"
    plain = run_job("generate_rgbd", RGBDRequest(out_dir=str(tmp_path / "plain"), **options), lambda p: None, CancelToken())
    base = Path(result.paths[0]["meta.json"]).parent / "base" / "rgb.png"
    assert base.read_bytes() == Path(plain.paths[0]["rgb.png"]).read_bytes(), "the base is the panorama generated without upscaling"
    with pytest.raises(BadInput, match="Upscale 3: must be 1, 2 or 4"):
        run_job("generate_rgbd", RGBDRequest(out_dir=str(tmp_path / "x"), upscale=3, **options), lambda p: None, CancelToken())
    assert not (tmp_path / "x").exists()


def test_auto_takes_the_projection_from_the_inputs_meta_json_and_without_one_only_a_2_to_1_image_for_a_panorama(tmp_path):
    def decided(folder, size, meta=None, **kw):
        rgb, depth = panorama(tmp_path / folder, *size)
        if meta is not None:
            (tmp_path / folder / "meta.json").write_text(json.dumps(meta))
        return upscale_projection(UpscaleRequest(str(rgb), str(depth), str(tmp_path / "out"), **kw), *size)

    assert decided("pano", (96, 48)) == ("EQUIRECTANGULAR", "a 2:1 image (96×48) without a meta.json: taken for a 360° panorama")
    assert decided("photo", (96, 64)) == ("FLAT", "a 96×64 image (not 2:1) without a meta.json: a flat image")
    assert decided("flat-ldm3d", (96, 48), {"kind": "rgbd4", "projection": "flat"}) == ("FLAT", "as the input's meta.json says")
    capture = {"depth_exr": "distances", "projection": "equirectangular"}
    assert decided("capture", (96, 48), capture) == ("EQUIRECTANGULAR", "as the input's meta.json says")
    assert decided("asked", (96, 48), projection="FLAT") == ("FLAT", "as requested")


def test_a_flat_photo_is_upscaled_flat_by_default_and_a_generated_depth_npy_is_read_as_its_disparity(upscaler, tmp_path):
    rgb, depth = panorama(tmp_path / "photo", 96, 64)
    result = run(request(upscaler, rgb, depth, tmp_path / "out"))
    assert result.projection == "FLAT" and (result.width, result.height) == (192, 128)
    assert not json.loads(Path(result.paths["meta.json"]).read_text())["seamless"], "no false seam across a photo's edges"
    disparity = np.linspace(0.1, 0.8, 96 * 48, dtype=np.float32).reshape(48, 96)
    generated, _ = panorama(tmp_path / "generated")
    np.save(tmp_path / "generated" / "depth.npy", disparity)
    (tmp_path / "generated" / "meta.json").write_text(json.dumps({"kind": "rgbd4", "projection": "equirectangular"}))
    np.testing.assert_array_equal(read_low_res(str(generated), str(tmp_path / "generated" / "depth.npy")).disparity, disparity)
