"""LDM3D: text, or an RGB image and its depth, → RGB + depth, on the shared denoising core.

Reads top to bottom: encode the prompt → prepare latents (noise, or the noised
RGBD input for img2img) → denoise (inpainting: the known region put back after
every step) → decode, then split the decoded channels
into colour and depth. The depth is what LDM3D learned from DPT: relative
inverse depth in [0, 1], near = bright. The 6-channel model packs it as a
16-bit value in two channels (high byte, low byte); the 4-channel models
(ldm3d-4c, ldm3d-pano) decode it as one channel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..diffusion import core
from ..diffusion.loading import StableDiffusionModel, on_device
from ..diffusion.seamless import wrap_longitude
from ..diffusion.sources import RGBD6
from ..progress import Reporter

#: Latent columns borrowed from the other edge when a tiled VAE must still wrap.
WRAP_MARGIN = 8


@dataclass
class RGBDSettings:
    prompts: Sequence[str]  # one per sample
    negatives: Sequence[str]
    seeds: Sequence[int]  # one per sample
    width: int
    height: int
    steps: int = 50
    guidance: float = 5.0
    scheduler: str = "DDIM"
    seamless: bool = False
    strength: float = 1.0  # img2img: 0 keeps the input, 1 ignores it
    init_rgb: np.ndarray | None = None  # H×W×3 float in [0, 1]
    init_disparity: np.ndarray | None = None  # H×W float in [0, 1], near = 1
    fill: np.ndarray | None = None  # inpainting: H×W bool, True where to generate; the rest is kept from the init
    vae_tiling: bool = False
    attention_slicing: bool = False


@dataclass
class RGBDImages:
    rgb: np.ndarray  # B×H×W×3 float32 in [0, 1]
    disparity: np.ndarray  # B×H×W float32 in [0, 1], near = 1
    disparity16: np.ndarray  # B×H×W uint16, as the model's depth image
    unet_calls: int = 0
    timesteps: list[int] = field(default_factory=list)


def pack_rgbd(rgb: np.ndarray, disparity: np.ndarray, kind: str) -> torch.Tensor:
    """RGB + disparity → the VAE's input channels in [-1, 1] (1×C×H×W)."""
    rgb = np.asarray(rgb, np.float32)
    disparity = np.asarray(disparity, np.float32)
    if kind == RGBD6:
        d16 = np.round(np.clip(disparity, 0, 1) * 65535).astype(np.int64)
        depth = np.stack([np.zeros_like(disparity), (d16 // 256) / 255.0, (d16 % 256) / 255.0], axis=-1)
    else:
        depth = disparity[..., None]
    pixels = np.concatenate([rgb, depth.astype(np.float32)], axis=-1)
    return torch.from_numpy(pixels * 2 - 1).permute(2, 0, 1)[None]


def unpack_rgbd(decoded: torch.Tensor, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The VAE's output in [-1, 1] → RGB, disparity and its 16-bit image (both bytes for 6 channels)."""
    pixels = core.to_pixels(decoded)
    rgb = pixels[..., :3]
    if kind == RGBD6:
        high, low = np.round(pixels[..., 4] * 255), np.round(pixels[..., 5] * 255)
        d16 = (high * 256 + low).astype(np.uint16)
        disparity = d16.astype(np.float32) / 65535
    else:
        disparity = pixels[..., 3]
        d16 = np.round(disparity * 65535).astype(np.uint16)
    return rgb, disparity.astype(np.float32), d16


def through_vae(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, vae: Any, seamless: bool, scale: float) -> torch.Tensor:
    """Run a VAE half so a panorama wraps: circular convolutions, or, when tiled, borrowed edge columns.

    ``scale`` is output width / input width (8 decoding, 1/8 encoding at SD's factor).
    """
    if not seamless:
        return fn(x)
    if not vae.use_tiling:
        with wrap_longitude(vae):
            return fn(x)
    margin_in = int(WRAP_MARGIN if scale > 1 else WRAP_MARGIN / scale)
    margin_out = int(margin_in * scale)
    padded = torch.cat([x[..., -margin_in:], x, x[..., :margin_in]], dim=-1)
    return fn(padded)[..., margin_out:-margin_out]


def configure(model: StableDiffusionModel, vae_tiling: bool, attention_slicing: bool) -> None:
    """The VAE tiled or whole; the UNet's attention sliced, or PyTorch's SDPA."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    if vae_tiling:
        model.vae.enable_tiling()
    else:
        model.vae.disable_tiling()
    if attention_slicing:
        model.unet.set_attention_slice("auto")
    else:
        model.unet.set_attn_processor(AttnProcessor2_0())  # PyTorch SDPA


def latent_mask(fill: np.ndarray, factor: int) -> torch.Tensor:
    """An H×W pixel mask → 1×1×h×w at latent size: a latent cell is filled if any of its pixels is, so no pixel to
    fill is ever kept."""
    mask = torch.from_numpy(np.ascontiguousarray(fill, np.float32))[None, None]
    return torch.nn.functional.max_pool2d(mask, factor) > 0


def keep_known(scheduler: Any, known: torch.Tensor, noise: torch.Tensor, timesteps: Any, fill: torch.Tensor) -> core.AfterStep:
    """Blended latent diffusion: after step i, the latents outside ``fill`` are the known ones noised to the level the
    next step starts from (with the job's own noise), and exactly the known ones after the last step."""

    def blend(latents: torch.Tensor, i: int) -> torch.Tensor:
        if i + 1 < len(timesteps):
            level = scheduler.add_noise(known, noise, timesteps[i + 1 : i + 2].repeat(len(latents)))
        else:
            level = known
        return torch.where(fill, latents, level.to(latents.dtype))

    return blend


@torch.inference_mode()
def generate(model: StableDiffusionModel, s: RGBDSettings, report: Reporter) -> RGBDImages:
    device, dtype, vae, unet = model.device, model.dtype, model.vae, model.unet
    factor = model.folder.vae_scale_factor
    scaling = vae.config.scaling_factor
    configure(model, s.vae_tiling, s.attention_slicing)

    # 1. Encode the prompt
    with on_device(model, model.text_encoder):
        cond = core.encode_prompts(model.tokenizer, model.text_encoder, s.prompts, s.negatives, s.guidance, device)
    report.step("Prompt encoded")

    # 2. Prepare latents: noise, or the RGBD input noised to the strength
    scheduler = core.make_scheduler(s.scheduler, model.scheduler_config)
    scheduler.set_timesteps(s.steps, device=device)
    gens = core.generators(s.seeds)
    shape = (len(s.seeds), unet.config.in_channels, s.height // factor, s.width // factor)
    noise = core.initial_noise(shape, gens, dtype, device)
    timesteps = scheduler.timesteps
    init_latents = None
    if s.init_rgb is not None and s.init_disparity is not None and (s.strength < 1.0 or s.fill is not None):
        pixels = pack_rgbd(s.init_rgb, s.init_disparity, model.folder.kind).to(device, dtype)
        with on_device(model, vae):
            encoded = through_vae(lambda x: vae.encode(x).latent_dist.mode(), pixels, vae, s.seamless, 1 / factor)
        init_latents = (encoded * scaling).expand(len(s.seeds), -1, -1, -1)
    if init_latents is None or s.strength >= 1.0:
        latents = noise * scheduler.init_noise_sigma
    else:
        kept = min(int(s.steps * s.strength), s.steps)
        start = (s.steps - kept) * scheduler.order
        timesteps = scheduler.timesteps[start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(start)
        latents = scheduler.add_noise(init_latents, noise, timesteps[:1].repeat(len(s.seeds))) if len(timesteps) else init_latents
    keep = None
    if s.fill is not None:
        if init_latents is None:
            raise ValueError("Inpainting needs the init RGB and disparity it keeps outside the fill")
        keep = keep_known(scheduler, init_latents, noise, timesteps, latent_mask(s.fill, factor).to(device))
    report.step("Latents ready")

    # 3. Denoise
    with on_device(model, unet), wrap_longitude(unet) if s.seamless else nullcontext():
        latents = core.denoise(unet, scheduler, latents, cond, timesteps, report, gens, after_step=keep)

    # 4. Decode and split colour from depth
    with on_device(model, vae):
        decoded = through_vae(lambda z: vae.decode(z / scaling, return_dict=False)[0], latents, vae, s.seamless, factor)
    rgb, disparity, d16 = unpack_rgbd(decoded, model.folder.kind)
    report.step("Decoded")
    return RGBDImages(rgb, disparity, d16, unet_calls=len(timesteps), timesteps=[int(t) for t in timesteps])
