"""The denoising core every pipeline shares.

Prompt encoding, classifier-free guidance, the scheduler loop with progress,
live preview and cancel: written once here, so each pipeline (LDM3D, later
ControlNet, multi-view and view-token ones) reads as a short sequence of
"encode prompt → prepare latents → denoise → decode". The steps follow
diffusers' Stable Diffusion pipelines, so the same models, seeds and
schedulers give the same numbers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import diffusers
import numpy as np
import torch

from ..choices import SCHEDULERS
from ..progress import Reporter

#: Stable Diffusion 1.x latents → approximate RGB, for cheap live previews.
_PREVIEW_RGB = torch.tensor([[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]])


def make_scheduler(name: str, config: dict[str, Any]) -> Any:
    """The sampler ``name`` (a ``choices.SCHEDULERS`` id) from a model's scheduler config."""
    choice = SCHEDULERS.get(name)
    return getattr(diffusers, choice.diffusers_class).from_config({**config, **dict(choice.settings)})


@dataclass
class Conditioning:
    """Text embeddings for the UNet: negatives first, then prompts, when guided."""

    embeds: torch.Tensor
    guidance: float
    #: ``added_cond_kwargs`` batched like ``embeds`` (SDXL: pooled text embeds and size ids); empty for SD 1.x
    added: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def guided(self) -> bool:
        return self.guidance > 1.0


def _embed(tokenizer: Any, text_encoder: Any, texts: Sequence[str], length: int, device: torch.device) -> torch.Tensor:
    tokens = tokenizer(list(texts), padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    mask = tokens.attention_mask.to(device) if getattr(text_encoder.config, "use_attention_mask", False) else None
    return text_encoder(tokens.input_ids.to(device), attention_mask=mask)[0]


@torch.inference_mode()
def encode_prompts(
    tokenizer: Any, text_encoder: Any, prompts: Sequence[str], negatives: Sequence[str], guidance: float, device: torch.device
) -> Conditioning:
    embeds = _embed(tokenizer, text_encoder, prompts, tokenizer.model_max_length, device)
    if guidance > 1.0:
        uncond = _embed(tokenizer, text_encoder, negatives, embeds.shape[1], device)
        embeds = torch.cat([uncond, embeds])
    return Conditioning(embeds.to(text_encoder.dtype), guidance)


def generators(seeds: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per sample, so sample i is reproducible from its seed alone, on any device."""
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def initial_noise(shape: tuple[int, ...], gens: list[torch.Generator], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Gaussian latents, sample i drawn from generator i (as diffusers does with a list of generators)."""
    draws = [torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32) for g in gens]
    return torch.cat(draws).to(device=device, dtype=dtype)


def _step_kwargs(scheduler: Any, gens: list[torch.Generator], eta: float) -> dict[str, Any]:
    accepted = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if "eta" in accepted:
        kwargs["eta"] = eta
    if "generator" in accepted:
        kwargs["generator"] = gens
    return kwargs


def latent_preview(latents: torch.Tensor, longest: int = 256) -> np.ndarray:
    """The first sample's latents as a small uint8 RGB image (approximate colours)."""
    lat = latents[0].float()
    if lat.shape[0] != 4:
        return np.zeros((1, 1, 3), np.uint8)
    rgb = torch.einsum("chw,cr->hwr", lat, _PREVIEW_RGB.to(lat.device))
    stride = max(1, max(rgb.shape[:2]) // longest)
    rgb = ((rgb[::stride, ::stride] + 1) * 127.5).clamp(0, 255)
    return rgb.to(torch.uint8).cpu().numpy()


def to_pixels(decoded: torch.Tensor) -> np.ndarray:
    """A VAE's output in [-1, 1] (B×C×H×W) → B×H×W×C float32 in [0, 1] on the CPU."""
    return (decoded.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()  # type: ignore[no-any-return]


#: (UNet input, timestep) → extra keyword arguments for this step's UNet call
StepInputs = Callable[[torch.Tensor, Any], dict[str, Any]]
#: (latents after step i, i) → the latents the next step starts from
AfterStep = Callable[[torch.Tensor, int], torch.Tensor]


@torch.inference_mode()
def denoise(
    unet: Any,
    scheduler: Any,
    latents: torch.Tensor,
    cond: Conditioning,
    timesteps: Sequence[Any],
    report: Reporter,
    gens: list[torch.Generator],
    eta: float = 0.0,
    step_inputs: StepInputs | None = None,
    preview: Callable[[torch.Tensor], np.ndarray] = latent_preview,
    after_step: AfterStep | None = None,
) -> torch.Tensor:
    """The scheduler loop: one UNet call per step (batched for guidance), reporting each step.

    ``eta`` is DDIM's noise (0: deterministic; its fresh noise comes from ``gens``).
    ``step_inputs`` adds UNet inputs that depend on the step, such as ControlNet
    residuals; it gets the UNet's (scaled, guidance-batched) input and the timestep.
    ``after_step`` replaces the latents after step i (its index), such as inpainting's
    known region put back.
    ``preview`` turns the latents after a step into the live preview image.
    """
    kwargs = _step_kwargs(scheduler, gens, eta)
    added = {"added_cond_kwargs": cond.added} if cond.added else {}
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        model_input = torch.cat([latents] * 2) if cond.guided else latents
        model_input = scheduler.scale_model_input(model_input, t)
        extra = step_inputs(model_input, t) if step_inputs is not None else {}
        noise = unet(model_input, t, encoder_hidden_states=cond.embeds, return_dict=False, **added, **extra)[0]
        if cond.guided:
            uncond, text = noise.chunk(2)
            noise = uncond + cond.guidance * (text - uncond)
        latents = scheduler.step(noise, t, latents, **kwargs, return_dict=False)[0]
        if after_step is not None:
            latents = after_step(latents, i)
        report.step(f"Denoising step {i + 1} of {total}", preview=preview(latents))
    return latents
