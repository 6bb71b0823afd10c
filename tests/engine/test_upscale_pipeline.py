"""LDM3D-sr on the shared core, with a tiny random model in Intel/ldm3d-sr's published layout loaded by our own loader.

The reference is the community pipeline's loop written out plainly: the low-res
RGBD resized to the target and encoded, DDIM with guidance, the UNet reading
noisy and low-res latents side by side with the noise level as its class.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from tiny_ldm3d import build_tiny_ldm3d_sr  # noqa: E402

from engine.diffusion import loading, sources  # noqa: E402
from engine.diffusion.seamless import wrap_longitude  # noqa: E402
from engine.progress import CancelToken, Reporter  # noqa: E402
from engine.world.ldm3d_pipeline import pack_rgbd, through_vae, unpack_rgbd  # noqa: E402
from engine.world.upscale_pipeline import UpscaleSettings, lanczos, plan_windows, upscale, window_weights  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = build_tiny_ldm3d_sr(tmp_path_factory.mktemp("models") / "tiny-ldm3d-sr")
    return loading.load_stable_diffusion(sources.inspect_ldm3d_sr(folder), torch.device("cpu"), torch.float32)


def low_res(width: int = 96, height: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random panorama: colour and disparity varying across, continuous over the seam."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 2 * np.pi, width, endpoint=False)
    y = np.linspace(0, 1, height)[:, None]
    phases = rng.uniform(0, 2 * np.pi, 4)
    rgb = np.stack([0.5 + 0.4 * np.sin(x + p) * (0.5 + 0.5 * y) for p in phases[:3]], axis=-1)
    disparity = 0.5 + 0.3 * np.cos(2 * x + phases[3]) * np.ones_like(y)
    return rgb.astype(np.float32), disparity.astype(np.float32)


def settings(rgb, disparity, **kw) -> UpscaleSettings:
    options = dict(width=2 * rgb.shape[1], height=2 * rgb.shape[0], seed=7, steps=3, guidance=6.0, prompt="a room", window=64)
    return UpscaleSettings(rgb, disparity, **{**options, **kw})


def run(model, s: UpscaleSettings):
    return upscale(model, s, Reporter(lambda p: None, CancelToken()))


@torch.inference_mode()
def reference(model, s: UpscaleSettings, wrap: bool) -> np.ndarray:
    """The community pipeline's loop, plainly: one UNet pass per step over the whole latent (its convolutions wrapped when ``wrap``)."""
    from diffusers import DDIMScheduler

    tokens = [model.tokenizer(t, padding="max_length", max_length=77, return_tensors="pt").input_ids for t in ("", s.prompt)]
    text = torch.cat([model.text_encoder(ids)[0] for ids in tokens])
    rgb = np.clip(lanczos(s.low_rgb, s.width, s.height, wrap), 0, 1)
    disparity = np.clip(lanczos(s.low_disparity[..., None], s.width, s.height, wrap)[..., 0], 0, 1)
    scaling = model.vae.config.scaling_factor
    image = (
        through_vae(lambda x: model.vae.encode(x).latent_dist.mode(), pack_rgbd(rgb, disparity, "rgbd4"), model.vae, wrap, 1 / 8) * scaling
    )
    scheduler = DDIMScheduler.from_config(model.scheduler_config)
    scheduler.set_timesteps(s.steps)
    generator = torch.Generator("cpu").manual_seed(s.seed)
    latents = torch.randn((1, 4, s.height // 8, s.width // 8), generator=generator) if s.noise is None else s.noise.clone()
    latents = latents * scheduler.init_noise_sigma
    with wrap_longitude(model.unet) if wrap else torch.inference_mode():
        for t in scheduler.timesteps:
            inputs = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            inputs = torch.cat([inputs, torch.cat([image] * 2)], dim=1)
            noise = model.unet(inputs, t, encoder_hidden_states=text, class_labels=torch.tensor([s.noise_level] * 2)).sample
            uncond, cond = noise.chunk(2)
            latents = scheduler.step(uncond + s.guidance * (cond - uncond), t, latents).prev_sample
    decoded = through_vae(lambda z: model.vae.decode(z / scaling).sample, latents, model.vae, wrap, 8)
    return unpack_rgbd(decoded, "rgbd4")[0][0]


def test_a_flat_image_upscales_as_the_community_pipelines_loop_and_is_not_wrapped(model):
    rgb, disparity = low_res()
    flat = run(model, settings(rgb, disparity))
    assert flat.rgb.shape == (1, 64, 192, 3) and flat.disparity.shape == (1, 64, 192) and flat.disparity16.dtype == np.uint16
    np.testing.assert_allclose(flat.rgb[0], reference(model, settings(rgb, disparity), wrap=False), atol=1e-5)
    wrapped = run(model, settings(rgb, disparity, seamless=True))
    assert np.abs(wrapped.rgb - flat.rgb).max() > 1e-3, "a flat image's edges are not joined"


def test_one_window_covering_everything_is_the_single_wrapped_pass(model):
    rgb, disparity = low_res()
    s = settings(rgb, disparity, seamless=True)
    assert len(plan_windows((8, 24), s.window, s.overlap, True)) == 1
    np.testing.assert_allclose(run(model, s).rgb[0], reference(model, s, wrap=True), atol=1e-5)


@pytest.mark.parametrize("window, shift", [(64, 8), (12, 32)], ids=["one-window", "three-windows"])
def test_rolling_a_panorama_by_a_multiple_of_8_px_rolls_the_upscale(model, window, shift):
    rgb, disparity = low_res()
    noise = torch.randn((1, 4, 8, 24), generator=torch.Generator().manual_seed(3))
    s = settings(rgb, disparity, seamless=True, window=window, overlap=4, noise=noise)
    assert len(plan_windows((8, 24), window, 4, True)) == (1 if window == 64 else 3)
    first = run(model, s)
    latent_shift = 2 * shift // 8  # the output is twice the input
    rolled = settings(np.roll(rgb, shift, axis=1), np.roll(disparity, shift, axis=1), seamless=True, window=window, overlap=4,
                      noise=torch.roll(noise, latent_shift, dims=3))  # fmt: skip
    second = run(model, rolled)
    np.testing.assert_allclose(second.rgb[0], np.roll(first.rgb[0], 2 * shift, axis=1), atol=2e-4)
    np.testing.assert_allclose(second.disparity[0], np.roll(first.disparity[0], 2 * shift, axis=1), atol=2e-4)


def test_the_seam_of_an_upscaled_panorama_is_no_rougher_than_its_neighbouring_columns(model):
    rgb, disparity = low_res()
    for window, tiled in ((64, False), (12, False), (12, True)):  # one pass, windows, windows with a tiled VAE (64 px tiles here)
        out = run(model, settings(rgb, disparity, seamless=True, window=window, overlap=4, vae_tiling=tiled)).rgb[0]
        steps = np.abs(np.diff(out, axis=1)).mean(axis=(0, 2))
        seam = np.abs(out[:, 0] - out[:, -1]).mean()
        assert seam <= steps.max(), (window, tiled, seam, steps.max())


def test_windows_cover_every_latent_once_or_more_and_wrap_only_in_longitude():
    windows = plan_windows((256, 512), 128, 32, wrap=True)
    assert windows.tops == (0, 64, 128) and len(windows.lefts) == 6 and len(windows) == 18
    covered = np.zeros((256, 512), int)
    for top, left in windows:
        covered[top : top + 128, (left + np.arange(128)) % 512] += 1
    assert covered.min() >= 1
    flat = plan_windows((256, 512), 128, 32, wrap=False)
    assert flat.lefts[-1] == 512 - 128, "a flat image's last window ends at its edge"
    assert len(plan_windows((64, 128), 128, 32, wrap=True)) == 1 and plan_windows((64, 128), 128, 32, True).whole_circle
    weights = window_weights(16, 16, 4)
    assert weights.min() > 0 and weights[8, 8] == 1


def test_the_wrapped_resize_reads_across_the_seam_and_the_flat_one_does_not():
    x = np.zeros((4, 32, 1), np.float32)
    x[:, -1] = 1.0  # a bright last column: in a panorama its neighbour is the first column
    wrapped, flat = lanczos(x, 64, 8, wrap=True), lanczos(x, 64, 8, wrap=False)
    assert wrapped[:, 0].mean() > 0.05 and abs(flat[:, 0].mean()) < 0.02
    np.testing.assert_allclose(lanczos(np.roll(x, 8, axis=1), 64, 8, wrap=True), np.roll(wrapped, 16, axis=1), atol=1e-6)
