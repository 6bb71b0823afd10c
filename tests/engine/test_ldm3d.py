"""The LDM3D pipeline on tiny random-weight models in the published layouts.

Random weights give noise, so these tests check equivalences and invariants:
the same numbers as diffusers' own LDM3D pipeline, both depth bytes used,
seamless wrap as a structural property, img2img limits, reproducibility.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_clip import embedding_lookups, read_clip_words  # noqa: E402
from tiny_ldm3d import build_tiny_dpt, build_tiny_ldm3d, diffusers_ldm3d_pipeline  # noqa: E402

from engine.choices import SCHEDULERS  # noqa: E402
from engine.client import make_client  # noqa: E402
from engine.diffusion import core, loading, sources  # noqa: E402
from engine.diffusion.sources import ModelAccess  # noqa: E402
from engine.errors import BadInput, JobCancelled  # noqa: E402
from engine.imagefiles import read_image  # noqa: E402
from engine.jobs import run_job  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402
from engine.world import ldm3d_pipeline as ldm3d  # noqa: E402
from engine.world.ldm3d import RGBDRequest  # noqa: E402

pytestmark = pytest.mark.timeout(300)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        4: build_tiny_ldm3d(root / "tiny-ldm3d-4c", vae_channels=4),
        6: build_tiny_ldm3d(root / "tiny-ldm3d", vae_channels=6, seed=1),
    }


def load(folder: Path):
    return loading.load_stable_diffusion(sources.inspect_ldm3d(folder), CPU, torch.float32)


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken(), 1)


def run(request: RGBDRequest, token: CancelToken | None = None, events: list | None = None):
    return run_job("generate_rgbd", request, (events.append if events is not None else lambda p: None), token or CancelToken())


def settings(**kw) -> ldm3d.RGBDSettings:
    seeds = kw.pop("seeds", [3])
    base = dict(prompts=["a cosy room"] * len(seeds), negatives=[""] * len(seeds), seeds=seeds, width=64, height=32, steps=3, guidance=5.0)
    return ldm3d.RGBDSettings(**{**base, **kw})


def test_text_to_rgbd_equals_diffusers_ldm3d_pipeline(models):
    model = load(models[4])
    ours = ldm3d.generate(model, settings(width=128, height=64, seeds=[7]), quiet())
    pipe = diffusers_ldm3d_pipeline(model)
    ref = pipe(
        "a cosy room",
        width=128,
        height=64,
        num_inference_steps=3,
        guidance_scale=5.0,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type="np",
    )
    assert ours.rgb.shape == ref.rgb.shape == (1, 64, 128, 3)
    np.testing.assert_allclose(ours.rgb, ref.rgb, atol=1e-4)
    np.testing.assert_allclose(ours.disparity, ref.depth[..., 0], atol=1e-4)


def test_six_channel_depth_uses_both_bytes(models):
    out = ldm3d.generate(load(models[6]), settings(width=64, height=64), quiet())
    assert out.disparity16.dtype == np.uint16
    assert len(np.unique(out.disparity16)) > 300
    np.testing.assert_array_equal(out.disparity, out.disparity16.astype(np.float32) / 65535)


def test_pack_and_unpack_are_inverse_for_both_kinds():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0, 1, (8, 16, 3)).astype(np.float32)
    d16 = rng.integers(0, 65536, (8, 16)).astype(np.uint16)
    for kind in (sources.RGBD4, sources.RGBD6):
        packed = ldm3d.pack_rgbd(rgb, d16 / 65535, kind)
        assert packed.shape == (1, 6 if kind == sources.RGBD6 else 4, 8, 16) and packed.abs().max() <= 1
        back_rgb, _, back16 = ldm3d.unpack_rgbd(packed, kind)
        np.testing.assert_allclose(back_rgb[0], rgb, atol=1e-6)
        np.testing.assert_array_equal(back16[0], d16)


def _rolled_noise(monkeypatch, k: int):
    original = core.initial_noise

    def rolled(*args, **kwargs):
        return torch.roll(original(*args, **kwargs), shifts=k, dims=-1)

    monkeypatch.setattr(core, "initial_noise", rolled)


@pytest.mark.parametrize("kind", [4, 6])
def test_seamless_wrap_commutes_with_rolling_the_latents(models, monkeypatch, kind):
    model = load(models[kind])
    s = settings(width=128, height=64, seamless=True)
    base = ldm3d.generate(model, s, quiet())
    k = 4  # latent columns: a multiple of the tiny UNet's downsampling (2)
    _rolled_noise(monkeypatch, k)
    shifted = ldm3d.generate(model, s, quiet())
    pixels = k * 2  # the tiny VAE's scale factor
    np.testing.assert_allclose(shifted.rgb, np.roll(base.rgb, pixels, axis=2), atol=2e-4)
    diff = np.abs(shifted.disparity - np.roll(base.disparity, pixels, axis=2))
    # 6 channels: each byte is rounded on its own, so a float-level change can flip one high-byte step
    assert diff.max() <= (2e-4 if kind == 4 else 257 / 65535) and (diff > 2e-4).mean() < 1e-3
    assert_no_seam(base.rgb[0])


def assert_no_seam(img: np.ndarray) -> None:
    """The last → first column step is one more neighbour step, not an outlier (random weights: pixel noise)."""
    neighbours = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))
    wrap = np.abs(img[:, 0] - img[:, -1]).mean()
    assert wrap <= neighbours.max() and wrap <= 1.5 * np.median(neighbours)


def test_seamless_changes_the_output_and_is_undone_afterwards(models):
    model = load(models[4])
    flat = ldm3d.generate(model, settings(width=128, height=64, seamless=False), quiet())
    wrapped = ldm3d.generate(model, settings(width=128, height=64, seamless=True), quiet())
    assert not np.allclose(flat.rgb, wrapped.rgb)
    # Convolutions are restored afterwards: a flat run after a seamless one is unchanged.
    again = ldm3d.generate(model, settings(width=128, height=64, seamless=False), quiet())
    np.testing.assert_array_equal(flat.rgb, again.rgb)


def test_seamless_with_vae_tiling_still_wraps(models):
    model = load(models[4])
    model.vae.tile_sample_min_size, model.vae.tile_latent_min_size = 32, 16  # force tiles at this tiny size
    try:
        tiled = ldm3d.generate(model, settings(width=128, height=64, seamless=True, vae_tiling=True), quiet())
    finally:
        model.vae.disable_tiling()
        model.vae.tile_sample_min_size = model.vae.config.sample_size
        model.vae.tile_latent_min_size = int(model.vae.config.sample_size / 2)
    assert_no_seam(tiled.rgb[0])


def test_img2img_strength_zero_is_a_vae_round_trip_and_one_ignores_the_input(models):
    model = load(models[4])
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0, 1, (32, 64, 3)).astype(np.float32)
    disparity = rng.uniform(0, 1, (32, 64)).astype(np.float32)
    kept = ldm3d.generate(model, settings(init_rgb=rgb, init_disparity=disparity, strength=0.0), quiet())
    with torch.inference_mode():
        z = model.vae.encode(ldm3d.pack_rgbd(rgb, disparity, sources.RGBD4)).latent_dist.mode()
        round_trip = ldm3d.unpack_rgbd(model.vae.decode(z).sample, sources.RGBD4)
    assert kept.unet_calls == 0
    np.testing.assert_allclose(kept.rgb, round_trip[0], atol=1e-5)
    np.testing.assert_allclose(kept.disparity, round_trip[1], atol=1e-5)

    ignored = ldm3d.generate(model, settings(init_rgb=rgb, init_disparity=disparity, strength=1.0), quiet())
    text_only = ldm3d.generate(model, settings(), quiet())
    np.testing.assert_array_equal(ignored.rgb, text_only.rgb)

    halfway = ldm3d.generate(model, settings(init_rgb=rgb, init_disparity=disparity, strength=0.5, steps=4), quiet())
    assert halfway.unet_calls == 2


@pytest.mark.parametrize("scheduler", SCHEDULERS.ids)
def test_every_scheduler_runs_and_repeats(models, scheduler):
    model = load(models[4])
    a = ldm3d.generate(model, settings(scheduler=scheduler, steps=4, seeds=[5, 6]), quiet())
    b = ldm3d.generate(model, settings(scheduler=scheduler, steps=4, seeds=[5, 6]), quiet())
    assert a.rgb.shape == (2, 32, 64, 3) and np.isfinite(a.rgb).all()
    assert a.rgb.min() >= 0 and a.rgb.max() <= 1
    np.testing.assert_array_equal(a.rgb, b.rgb)
    assert not np.array_equal(a.rgb[0], a.rgb[1])  # seeds 5 and 6 differ
    assert a.unet_calls == 4


# The job: files, metadata, reproducibility, cancel, bad input ------------------------------------


def request(models, out: Path, **kw) -> RGBDRequest:
    base = dict(prompt="a cosy room", model=str(models[4]), out_dir=str(out), width=64, height=32, steps=2, seed=11)
    return RGBDRequest(**{**base, **kw})


def test_job_writes_the_files_and_metadata(models, tmp_path):
    events: list = []
    with embedding_lookups() as lookups:
        result = run(request(models, tmp_path / "out"), events=events)
    assert read_clip_words(lookups, "a", "room"), "the prompt went through CLIP's real tokenizer and 49,408-row table"
    files = result.paths[0]
    assert sorted(Path(p).name for p in files.values()) == ["depth.npy", "depth16.png", "meta.json", "rgb.png"]
    meta = json.loads(Path(files["meta.json"]).read_text())
    assert meta["prompt"] == "a cosy room" and meta["seed"] == 11 and meta["scheduler"] == "DDIM"
    assert (meta["width"], meta["height"], meta["steps"]) == (64, 32, 2)
    assert meta["seamless"] is True and meta["projection"] == "equirectangular" and meta["kind"] == "rgbd4"
    assert meta["revision"].startswith("folder-") and meta["engine_version"]
    depth = np.load(files["depth.npy"])
    assert depth.shape == (32, 64) and depth.dtype == np.float32 and 0 <= depth.min() <= depth.max() <= 1
    assert [e.done for e in events] == list(range(1, len(events) + 1)) and events[-1].done == events[-1].total
    assert any(e.preview is not None for e in events)


def test_same_request_gives_bit_identical_files(models, tmp_path):
    a = run(request(models, tmp_path / "a", count=2)).paths
    b = run(request(models, tmp_path / "b", count=2)).paths
    assert [Path(p["rgb.png"]).parent.name for p in a] == ["sample-1", "sample-2"]
    for pa, pb in zip(a, b):
        for name in ("rgb.png", "depth16.png", "depth.npy"):
            assert Path(pa[name]).read_bytes() == Path(pb[name]).read_bytes()
    single = run(request(models, tmp_path / "c", seed=12)).paths[0]  # sample 2 is seed 12 on its own …
    np.testing.assert_allclose(np.load(single["depth.npy"]), np.load(a[1]["depth.npy"]), atol=1e-5)  # … to float rounding:
    alone, batched = (read_image(Path(p["rgb.png"])).pixels.astype(int) for p in (single, a[1]))  # a batch of 2 sums in another order
    assert np.abs(alone - batched).max() <= 1 and (alone != batched).mean() < 0.001


@pytest.mark.slow
def test_both_transports_give_the_same_files(models, tmp_path):
    outputs = []
    for mode in ("IN_PROCESS", "SUBPROCESS"):
        client = make_client(mode, sys.executable)
        try:
            result = client.run("generate_rgbd", request(models, tmp_path / mode))
        finally:
            client.release()
        outputs.append(Path(result.paths[0]["depth16.png"]).read_bytes())
    assert outputs[0] == outputs[1]


def test_cancel_writes_nothing(models, tmp_path):
    token = CancelToken()

    def emit(p):
        if p.message.startswith("Denoising step 1"):
            token.cancel()

    with pytest.raises(JobCancelled):
        run_job("generate_rgbd", request(models, tmp_path / "out", steps=5), emit, token)
    assert not (tmp_path / "out").exists()


def test_existing_outputs_are_kept(models, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "rgb.png").write_bytes(b"mine")
    with pytest.raises(BadInput, match="already holds rgb.png"):
        run(request(models, out))
    assert (out / "rgb.png").read_bytes() == b"mine" and sorted(p.name for p in out.iterdir()) == ["rgb.png"]


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(width=60), "Width 60: must be 0, or 8–8192, a multiple of 8"),
        (dict(width=8192, height=4096, count=16), "needs about"),
        (dict(width=16384, height=8192), "Width 16384: must be"),
        (dict(width=64, height=64), "2:1"),
        (dict(prompt="  "), "needs a prompt"),
        (dict(steps=0), "Steps 0: must be 1–1000"),
        (dict(strength=1.5, init_rgb=np.zeros((32, 64, 3), np.uint8), init_depth=np.zeros((32, 64), np.float32)), "Strength"),
        (dict(init_rgb=np.zeros((32, 64, 3), np.uint8), init_depth=np.zeros((16, 64), np.float32)), "same size"),
        (dict(init_rgb=np.zeros((32, 32, 3), np.uint8), init_depth=np.zeros((32, 32), np.float32), width=0, height=0), "2:1"),
        (dict(init_rgb=np.zeros((64, 128, 3), np.uint8), init_depth=np.zeros((64, 128), np.float32)), "must match"),
        (dict(init_rgb=np.zeros((32, 64, 3), np.uint8), init_depth=np.full((32, 64), 3.0, np.float32)), "METRIC"),
        (dict(scheduler="PNDM"), "Sampler 'PNDM': choose from DDIM"),
        (dict(count=0), "Count"),
        (dict(model="no/such-model"), "not in the Hugging Face cache"),
        (dict(model="/no/such/folder"), "not found"),
    ],
)
def test_bad_requests_are_refused_before_any_model_loads(models, tmp_path, monkeypatch, kw, words):
    loading.release()
    monkeypatch.setattr(loading, "load_stable_diffusion", lambda *a, **k: pytest.fail("loaded a model for a bad request"))
    with pytest.raises(BadInput, match=words):
        run(request(models, tmp_path / "out", access=ModelAccess(cache_dir=str(tmp_path / "empty-cache")), **kw))
    assert not (tmp_path / "out").exists()


def test_an_rgb_only_model_and_an_incomplete_one_are_named(models, tmp_path):
    import shutil

    sd = tmp_path / "sd"
    shutil.copytree(models[4], sd)
    config = json.loads((sd / "vae" / "config.json").read_text())
    config.update(in_channels=3, out_channels=3)
    (sd / "vae" / "config.json").write_text(json.dumps(config))
    with pytest.raises(BadInput, match="RGB model \\(3-channel VAE"):
        run(request(models, tmp_path / "o1", model=str(sd)))
    (sd / "unet" / "config.json").unlink()
    with pytest.raises(BadInput, match="unet/config.json missing"):
        run(request(models, tmp_path / "o2", model=str(sd)))


def test_a_tokenizer_saved_by_transformers_5_alone_is_complete(models, tmp_path):
    """transformers 5 saves tokenizer.json without vocab.json and merges.txt; the published layout has both."""
    import shutil

    from transformers import CLIPTokenizer

    fast = tmp_path / "fast"
    shutil.copytree(models[4], fast)
    shutil.rmtree(fast / "tokenizer")
    CLIPTokenizer.from_pretrained(models[4] / "tokenizer").save_pretrained(fast / "tokenizer")
    for name in ("vocab.json", "merges.txt"):
        (fast / "tokenizer" / name).unlink(missing_ok=True)
    assert (fast / "tokenizer" / "tokenizer.json").is_file()
    ours = run(request(models, tmp_path / "a", model=str(fast))).paths[0]
    published = run(request(models, tmp_path / "b")).paths[0]
    assert Path(ours["rgb.png"]).read_bytes() == Path(published["rgb.png"]).read_bytes()  # the same tokens
    (fast / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(BadInput, match="tokenizer/tokenizer.json \\(or tokenizer/vocab.json and merges.txt\\) missing"):
        run(request(models, tmp_path / "c", model=str(fast)))


def test_pickled_weights_load_only_when_allowed(tmp_path):
    folder = build_tiny_ldm3d(tmp_path / "pickled", safetensors=False)
    with pytest.raises(BadInput, match="only pickled weights"):
        run(RGBDRequest(prompt="x", model=str(folder), out_dir=str(tmp_path / "o1"), width=64, height=32, steps=1))
    assert not (tmp_path / "o1").exists()
    result = run(
        RGBDRequest(
            prompt="x", model=str(folder), out_dir=str(tmp_path / "o2"), width=64, height=32, steps=1, access=ModelAccess(allow_pickle=True)
        )
    )
    assert Path(result.paths[0]["rgb.png"]).is_file()


def test_repo_ids_resolve_from_the_hub_cache_offline(models, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--Intel--ldm3d-pano" / "snapshots" / commit
    shutil.copytree(models[4], snapshot)
    (cache / "models--Intel--ldm3d-pano" / "refs").mkdir()
    (cache / "models--Intel--ldm3d-pano" / "refs" / "main").write_text(commit)
    result = run(request(models, tmp_path / "out", model="Intel/ldm3d-pano", access=ModelAccess(cache_dir=str(cache))))
    assert result.revision == commit
    listed = run_job(
        "list_models",
        __import__("engine.world.model_listing").world.model_listing.ModelsRequest(ModelAccess(str(models[4].parent), str(cache))),
        lambda p: None,
        CancelToken(),
    )
    assert "Intel/ldm3d-pano" in listed.sources and str(models[6]) in listed.sources
    assert dict(zip(listed.sources, listed.kinds))[str(models[6])] == "rgbd6"


def test_one_side_given_sets_the_other(models, tmp_path):
    assert (run(request(models, tmp_path / "a", height=0)).height) == 32  # panorama: half the width
    flat = run(request(models, tmp_path / "b", width=0, height=48, projection="FLAT"))
    assert (flat.width, flat.height) == (48, 48)


def test_downloads_only_when_allowed_and_report_progress(models, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, *, tqdm_class=None, **kwargs):
        calls.append(dict(repo_id=repo_id, **kwargs))
        bar = tqdm_class(total=3, disable=True)
        for _ in range(3):
            bar.update(1)
        bar.close()
        return str(models[4])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    with pytest.raises(BadInput, match="allow downloads"):
        run(request(models, tmp_path / "a", model="Intel/ldm3d-pano"))
    events: list = []
    run(request(models, tmp_path / "b", model="Intel/ldm3d-pano", access=ModelAccess(allow_download=True)), events=events)
    assert [c["repo_id"] for c in calls] == ["Intel/ldm3d-pano"]  # without downloads the hub is not even asked
    assert "*.bin" in calls[0]["ignore_patterns"]  # pickles are not even fetched unless allowed
    assert any(e.message == "Downloading model files: 3 of 3" for e in events)


def test_release_engine_drops_the_loaded_model(models, tmp_path):
    from engine import runtime

    run(request(models, tmp_path / "a"))
    assert loading.loaded() is not None
    runtime.release_memory()
    assert loading.loaded() is None


def test_img2img_from_rgb_alone_estimates_the_depth_with_dpt(models, tmp_path, monkeypatch):
    from engine.world.depth_estimator import estimate_disparity

    dpt = build_tiny_dpt(tmp_path / "dpt")
    rgb = np.random.default_rng(2).uniform(0, 1, (32, 64, 3)).astype(np.float32)
    disparity = estimate_disparity(rgb, dpt, "tiny dpt", False, CPU)
    assert disparity.shape == (32, 64) and disparity.min() == 0 and disparity.max() == 1
    np.testing.assert_array_equal(disparity, estimate_disparity(rgb, dpt, "tiny dpt", False, CPU))

    seen = {}
    original = ldm3d.generate
    monkeypatch.setattr(ldm3d, "generate", lambda model, s, report: seen.setdefault("s", s) and original(model, s, report))
    result = run(request(models, tmp_path / "out", init_rgb=rgb, strength=0.5, depth_estimator=str(dpt)))
    np.testing.assert_array_equal(seen["s"].init_disparity, disparity)
    assert json.loads(Path(result.paths[0]["meta.json"]).read_text())["init_depth"] == f"estimated with {dpt}"

    loading.release()
    monkeypatch.setattr(loading, "load_stable_diffusion", lambda *a, **k: pytest.fail("loaded a model for a bad request"))
    with pytest.raises(BadInput, match="depth estimator is not available"):
        run(
            request(
                models,
                tmp_path / "o2",
                init_rgb=rgb,
                strength=0.5,
                depth_estimator=str(tmp_path / "none"),
                access=ModelAccess(cache_dir=str(tmp_path / "c")),
            )
        )
    with pytest.raises(BadInput, match="no config.json"):
        run(request(models, tmp_path / "o3", init_rgb=rgb, strength=0.5, depth_estimator=str(models[4])))


def test_offloaded_components_give_the_same_result(models):
    """Offload moves each component to the device only while it runs (a no-op move here, on the CPU)."""
    plain = ldm3d.generate(load(models[4]), settings(), quiet())
    offloaded = loading.load_stable_diffusion(sources.inspect_ldm3d(models[4]), CPU, torch.float32, offload=True)
    assert offloaded.offload
    np.testing.assert_array_equal(ldm3d.generate(offloaded, settings(), quiet()).rgb, plain.rgb)
    sliced = ldm3d.generate(offloaded, settings(attention_slicing=True), quiet())  # same maths, other summation order
    np.testing.assert_allclose(sliced.rgb, plain.rgb, atol=1e-5)


def test_loading_a_model_draws_no_library_progress_bar(models, capfd):
    """transformers 5 draws a "Loading weights" bar on stderr for every model; a batch run's stderr holds our lines only."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.enable_progress_bar()
    transformers_logging.enable_progress_bar()
    capfd.readouterr()
    loading.load_stable_diffusion(sources.inspect_ldm3d(models[4]), CPU, torch.float32)
    assert capfd.readouterr().err == ""
