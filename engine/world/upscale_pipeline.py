"""LDM3D-sr: a low-res RGB + depth → the same at a larger size, on the shared denoising core.

Reads top to bottom: encode the prompt → the low-res RGBD resized to the
target (Lanczos) and encoded to latents → denoise from noise, the UNet reading
the noisy latents with the low-res latents beside them and the noise level as
its class → decode to RGB + depth.

Two things the community pipeline does not do:

* **Seamless 360°.** For a panorama, the resize wraps in longitude (the input is
  padded with its own far columns before resampling) and every UNet and VAE
  convolution wraps (:mod:`.seamless`); a tiled VAE borrows edge columns.
* **Any size.** Latents larger than one window are denoised in overlapping
  windows (MultiDiffusion): each step runs the UNet on every window, and each
  latent pixel takes the weighted mean of the windows over it (weights ramp up
  from a window's edges). In longitude the windows wrap around the seam. One
  window covering everything is the single pass.

The conditioning latents are the VAE posterior's mean, where the community
pipeline draws a sample: the difference is the posterior's own noise (tiny next
to the latents), and the mean keeps the conditioning deterministic and
equivariant to rolling a panorama.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..diffusion import core
from ..diffusion.loading import StableDiffusionModel, on_device
from ..diffusion.seamless import wrap_longitude
from ..diffusion.sources import RGBD4
from ..imagefiles import resample
from ..progress import Reporter
from .ldm3d_pipeline import RGBDImages, configure, pack_rgbd, through_vae, unpack_rgbd


@dataclass
class UpscaleSettings:
    low_rgb: np.ndarray  # H×W×3 float in [0, 1]
    low_disparity: np.ndarray  # H×W float in [0, 1], near = 1
    width: int  # the target size
    height: int
    prompt: str  # the model card's: engine.world.upscale.PROMPT
    seed: int = 0
    negative: str = ""
    steps: int = 50
    guidance: float = 9.0
    noise_level: int = 20  # the UNet's class label (no noise is added to the input, as the community pipeline)
    scheduler: str = "DDIM"
    seamless: bool = False  # a 360° panorama: wrap in longitude
    window: int = 128  # latent pixels on a window's side
    overlap: int = 32  # latent pixels two neighbouring windows share (at least)
    window_batch: int = 1  # windows per UNet call
    vae_tiling: bool = False
    attention_slicing: bool = False
    noise: torch.Tensor | None = None  # the starting latents (1×4×h×w); default: drawn from the seed


@dataclass(frozen=True)
class Windows:
    """Windows of ``height``×``width`` latent pixels over a latent grid; their columns wrap past the right edge when ``wrap``."""

    grid: tuple[int, int]  # the latents' (height, width)
    height: int
    width: int
    tops: tuple[int, ...]
    lefts: tuple[int, ...]
    wrap: bool

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((top, left) for top in self.tops for left in self.lefts)

    def __len__(self) -> int:
        return len(self.tops) * len(self.lefts)

    @property
    def whole_circle(self) -> bool:
        """One window spans the full longitude: its convolutions wrap, not its crop."""
        return self.wrap and self.width == self.grid[1]


def _starts(length: int, window: int, overlap: int, wrap: bool) -> tuple[int, ...]:
    if window >= length:
        return (0,)
    stride = max(1, window - overlap)
    if wrap:  # evenly round the circle, the last window reaching over the seam into the first
        count = math.ceil(length / stride)
        return tuple(round(i * length / count) for i in range(count))
    count = math.ceil((length - window) / stride) + 1
    return tuple(round(i * (length - window) / (count - 1)) for i in range(count))


def plan_windows(grid: tuple[int, int], window: int, overlap: int, wrap: bool) -> Windows:
    height, width = grid
    h, w = min(window, height), min(window, width)
    return Windows(grid, h, w, _starts(height, h, overlap, False), _starts(width, w, overlap, wrap), wrap)


def window_weights(height: int, width: int, overlap: int) -> torch.Tensor:
    """A window's blending weight: 1 inside, ramping down over ``overlap`` pixels towards its edges (never 0)."""

    def ramp(n: int) -> torch.Tensor:
        i = torch.arange(n, dtype=torch.float32)
        return torch.clamp(torch.minimum(i + 1, n - i) / (overlap + 1), max=1.0)

    return ramp(height)[:, None] * ramp(width)[None, :]


class WindowedUNet:
    """The UNet as the core's loop calls it: over the windows, the low-res latents beside the noisy ones, the noise level as class."""

    def __init__(self, unet: Any, condition: torch.Tensor, noise_level: int, windows: Windows, overlap: int, batch: int = 1) -> None:
        self.unet, self.condition, self.windows, self.batch = unet, condition, windows, max(1, batch)
        self.noise_level = noise_level
        self.weights = window_weights(windows.height, windows.width, overlap).to(condition.device, torch.float32)
        self.calls = 0

    def _columns(self, left: int, device: torch.device) -> torch.Tensor:
        return (left + torch.arange(self.windows.width, device=device)) % self.windows.grid[1]

    def __call__(
        self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor, return_dict: bool = False
    ) -> tuple[torch.Tensor]:
        copies = sample.shape[0] // self.condition.shape[0]  # 2 when the loop batches the guidance
        full = torch.cat([sample, self.condition.repeat(copies, 1, 1, 1)], dim=1)
        labels = torch.full((sample.shape[0],), self.noise_level, dtype=torch.long, device=sample.device)
        total = torch.zeros(sample.shape, dtype=torch.float32, device=sample.device)
        weight = torch.zeros(self.windows.grid, dtype=torch.float32, device=sample.device)
        h, boxes = self.windows.height, list(self.windows)
        wrapping = wrap_longitude(self.unet) if self.windows.whole_circle else nullcontext()
        with wrapping:
            for first in range(0, len(boxes), self.batch):
                chunk = boxes[first : first + self.batch]
                crops = [full[:, :, top : top + h].index_select(3, self._columns(left, sample.device)) for top, left in chunk]
                k = len(chunk)
                predicted = self.unet(
                    torch.cat(crops),
                    timestep,
                    encoder_hidden_states=encoder_hidden_states.repeat(k, 1, 1),
                    class_labels=labels.repeat(k),
                    return_dict=False,
                )[0].float()
                self.calls += 1
                for i, (top, left) in enumerate(chunk):
                    columns = self._columns(left, sample.device)
                    part = predicted[i * sample.shape[0] : (i + 1) * sample.shape[0]] * self.weights
                    total[:, :, top : top + h].index_add_(3, columns, part)
                    weight[top : top + h].index_add_(1, columns, self.weights)
        return ((total / weight).to(sample.dtype),)


def lanczos(pixels: np.ndarray, width: int, height: int, wrap: bool) -> np.ndarray:
    """Pixels resized with Lanczos, the community pipeline's filter (wrapping in longitude for a panorama)."""
    return resample(pixels, width, height, "LANCZOS", wrap)


@torch.inference_mode()
def upscale(model: StableDiffusionModel, s: UpscaleSettings, report: Reporter) -> RGBDImages:
    device, dtype, vae, unet = model.device, model.dtype, model.vae, model.unet
    factor, scaling = model.folder.vae_scale_factor, vae.config.scaling_factor
    configure(model, s.vae_tiling, s.attention_slicing)

    # 1. Encode the prompt
    with on_device(model, model.text_encoder):
        cond = core.encode_prompts(model.tokenizer, model.text_encoder, [s.prompt], [s.negative], s.guidance, device)
    report.step("Prompt encoded")

    # 2. The low-res RGBD at the target size, as latents
    rgb = np.clip(lanczos(s.low_rgb, s.width, s.height, s.seamless), 0, 1)
    disparity = np.clip(lanczos(s.low_disparity[..., None], s.width, s.height, s.seamless)[..., 0], 0, 1)
    if vae.dtype != torch.float32:
        vae.to(dtype=torch.float32)  # as its 0.9-era config asks (force_upcast): in fp16 it overflows at these sizes
    pixels = pack_rgbd(rgb, disparity, RGBD4).to(device, torch.float32)
    with on_device(model, vae):
        encoded = through_vae(lambda x: vae.encode(x).latent_dist.mode(), pixels, vae, s.seamless, 1 / factor)
    condition = (encoded * scaling).to(dtype)
    report.step("Low-res input encoded")

    # 3. Denoise from noise, the UNet over its windows
    scheduler = core.make_scheduler(s.scheduler, model.scheduler_config)
    scheduler.set_timesteps(s.steps, device=device)
    gens = core.generators([s.seed])
    shape = (1, vae.config.latent_channels, s.height // factor, s.width // factor)
    noise = s.noise.to(device, dtype) if s.noise is not None else core.initial_noise(shape, gens, dtype, device)
    windows = plan_windows(shape[2:], s.window, s.overlap, s.seamless)
    windowed = WindowedUNet(unet, condition, s.noise_level, windows, s.overlap, s.window_batch)
    with on_device(model, unet):
        latents = core.denoise(windowed, scheduler, noise * scheduler.init_noise_sigma, cond, scheduler.timesteps, report, gens)

    # 4. Decode and split colour from depth
    with on_device(model, vae):
        decoded = through_vae(lambda z: vae.decode(z / scaling, return_dict=False)[0], latents.float(), vae, s.seamless, factor)
    rgb_out, disparity_out, d16 = unpack_rgbd(decoded, RGBD4)
    report.step("Decoded")
    return RGBDImages(rgb_out, disparity_out, d16, unet_calls=windowed.calls, timesteps=[int(t) for t in scheduler.timesteps])


def count_windows(width: int, height: int, factor: int, window: int, overlap: int, wrap: bool) -> int:
    """How many windows a target size is denoised in."""
    return len(plan_windows((height // factor, width // factor), window, overlap, wrap))
