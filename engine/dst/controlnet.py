"""ControlNet text → image on the shared denoising core: 3D-DST's generator.

An edge map (Canny edges of a rendered CAD model) pins the object's outline,
so the generated image keeps the render's known 3D pose. Reads top to bottom:
encode the prompt (SD: one text encoder; SDXL: two, plus pooled embeds and size
ids) → prepare the control image and noise → denoise, the ControlNet adding its
residuals to the UNet at every step → decode. The defaults are 3D-DST's
sampling settings; the steps follow diffusers' ControlNet pipelines, so the
same models and seeds give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..diffusion import core
from ..diffusion.loading import ControlNetPipelineModel, on_device
from ..errors import BadInput
from ..progress import Reporter
from .sdxl import encode_prompts_xl


@dataclass
class ControlSettings:
    prompts: Sequence[str]  # one per sample
    negatives: Sequence[str]
    seeds: Sequence[int]  # one per sample; samples are independent, so batches can be split freely
    control: np.ndarray  # the edge map: H×W (or H×W×3) uint8 0/255, or float in [0, 1]
    width: int = 0  # 0: the edge map's size
    height: int = 0
    steps: int = 20
    guidance: float = 9.0
    eta: float = 1.0  # DDIM's noise; 3D-DST samples with 1.0
    scheduler: str = "DDIM"
    control_scale: float = 1.0  # "control strength": scales all of the ControlNet's residuals
    guess_mode: bool = False  # the ControlNet sees no prompt and its residuals guide the prompted half only


def control_tensor(edges: np.ndarray, width: int, height: int) -> torch.Tensor:
    """An edge map → the ControlNet's input as diffusers prepares a PIL image: 1×3×H×W RGB in [0, 1].

    Grey maps are repeated into three channels; another size is resampled with
    PIL's Lanczos filter, as diffusers' control image processor does.
    """
    from PIL import Image

    array = np.asarray(edges)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise BadInput(f"An edge map must be H×W or H×W×3, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise BadInput("A float edge map must lie in [0, 1]")
        array = np.round(array.astype(np.float64) * 255)
    pixels = array[..., :3].astype(np.uint8)
    if pixels.shape[:2] != (height, width):
        pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))
    return torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def _encode(model: ControlNetPipelineModel, s: ControlSettings, size: tuple[int, int]) -> core.Conditioning:
    device = model.device
    if len(model.text_encoders) == 1:
        with on_device(model, model.text_encoders[0]):
            return core.encode_prompts(model.tokenizers[0], model.text_encoders[0], s.prompts, s.negatives, s.guidance, device)
    with on_device(model, model.text_encoders[0]), on_device(model, model.text_encoders[1]):
        return encode_prompts_xl(
            model.tokenizers, model.text_encoders, s.prompts, s.negatives, s.guidance, size, device, model.zero_empty_negative
        )


def _controlnet_inputs(
    model: ControlNetPipelineModel, cond: core.Conditioning, image: torch.Tensor, scale: float, guess: bool
) -> core.StepInputs:
    """Each step's ControlNet residuals for the UNet (guess mode: from the prompted half only, zeros for the other)."""
    halved = guess and cond.guided
    embeds = cond.embeds.chunk(2)[1] if halved else cond.embeds
    added = {k: v.chunk(2)[1] for k, v in cond.added.items()} if halved else cond.added
    extra = {"added_cond_kwargs": added} if added else {}

    def inputs(model_input: torch.Tensor, t: Any) -> dict[str, Any]:
        sample = model_input.chunk(2)[1] if halved else model_input
        down, mid = model.controlnet(
            sample,
            t,
            encoder_hidden_states=embeds,
            controlnet_cond=image,
            conditioning_scale=scale,
            guess_mode=guess,
            return_dict=False,
            **extra,
        )
        if halved:
            down = [torch.cat([torch.zeros_like(d), d]) for d in down]
            mid = torch.cat([torch.zeros_like(mid), mid])
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}

    return inputs


def _decode(vae: Any, latents: torch.Tensor) -> np.ndarray:
    config = vae.config
    mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
    latents = latents.to(vae.dtype)
    if mean is not None and std is not None:
        shape = (1, len(mean), 1, 1)
        latents = latents * torch.tensor(std).view(shape).to(latents) / config.scaling_factor + torch.tensor(mean).view(shape).to(latents)
    else:
        latents = latents / config.scaling_factor
    pixels = vae.decode(latents, return_dict=False)[0]
    return core.to_pixels(pixels)


@torch.inference_mode()
def generate(model: ControlNetPipelineModel, s: ControlSettings, report: Reporter) -> np.ndarray:
    """The samples as B×H×W×3 float32 RGB in [0, 1]; sample i comes from ``seeds[i]`` alone."""
    device, unet = model.device, model.unet
    factor = model.folder.vae_scale_factor
    edges = np.asarray(s.control)
    width = (s.width or edges.shape[1]) // factor * factor
    height = (s.height or edges.shape[0]) // factor * factor
    count = len(s.seeds)
    if not (len(s.prompts) == len(s.negatives) == count) or count == 0:
        raise BadInput(f"Give one prompt, negative prompt and seed per sample ({len(s.prompts)}, {len(s.negatives)}, {count})")

    # 1. Encode the prompt
    cond = _encode(model, s, (height, width))
    report.step("Prompt encoded")

    # 2. The control image, batched like the UNet input, and the starting noise
    image = control_tensor(edges, width, height).repeat(count, 1, 1, 1)
    guess = s.guess_mode or bool(model.controlnet.config.get("global_pool_conditions", False))  # shuffle-type nets always guess
    image = torch.cat([image] * 2) if cond.guided and not guess else image
    image = image.to(device=device, dtype=model.controlnet.dtype)
    scheduler = core.make_scheduler(s.scheduler, model.scheduler_config)
    scheduler.set_timesteps(s.steps, device=device)
    gens = core.generators(s.seeds)
    shape = (count, unet.config.in_channels, height // factor, width // factor)
    latents = core.initial_noise(shape, gens, cond.embeds.dtype, device) * scheduler.init_noise_sigma
    report.step("Latents ready")

    # 3. Denoise, the ControlNet steering every step
    inputs = _controlnet_inputs(model, cond, image, s.control_scale, guess)
    with on_device(model, unet), on_device(model, model.controlnet):
        latents = core.denoise(unet, scheduler, latents, cond, scheduler.timesteps, report, gens, s.eta, inputs)

    # 4. Decode
    with on_device(model, model.vae):
        rgb = _decode(model.vae, latents)
    report.step("Decoded")
    return rgb.astype(np.float32)
