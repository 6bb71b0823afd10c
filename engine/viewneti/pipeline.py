"""ViewNeTI generation on the shared denoising core: a camera → its view of the object, from a frozen Stable Diffusion 2.x.

Reads top to bottom: the prompt template's ids and the unconditional text →
latents → denoise, where the step hook runs the mappers for this timestep at
all 16 cross-attention layers, encodes the 16 prompts in one batch and hands
each layer its keys (plain states) and values (bypassed states) → decode. The
unconditional half is the plain negative prompt, with no mappers, as the
original samples it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..diffusion import core
from ..diffusion.loading import StableDiffusionModel, on_device
from ..progress import Reporter
from . import attention, text
from .mapper import LAYERS, Mapper, mapper_inputs, tokens

TEMPLATE = f"{text.VIEW}. A photo of a {text.OBJECT}"


@dataclass
class Mappers:
    """A trained view and object mapper with what their outputs are scaled by."""

    view: Mapper
    object: Mapper
    view_norm: float  # the norm of the reference word's embedding row ("view")
    object_norm: float  # ("object")
    alpha: float = 5.0  # the bypass strength


@dataclass
class NovelViewSettings:
    camera: torch.Tensor  # the view mapper's camera numbers, normalised as in training: [k]
    seeds: Sequence[int]
    width: int = 768
    height: int = 576
    steps: int = 30
    guidance: float = 7.5
    scheduler: str = "DPMPP_2M"
    template: str = TEMPLATE
    negative: str = ""


def layer_states(
    mappers: Mappers, text_encoder: Any, ids: torch.Tensor, positions: dict[str, int], timesteps: torch.Tensor, cameras: torch.Tensor
) -> attention.LayerStates:
    """Every layer's text states for B (timestep, camera) pairs — 16·B text-encoder passes in one batch: [16, B, tokens, width]."""
    device = ids.device
    batch = len(timesteps)
    layers = torch.arange(LAYERS, device=device).repeat_interleave(batch)  # pass i·B + b: layer i, sample b
    t = timesteps.to(device).repeat(LAYERS)
    camera = cameras.to(device).repeat(LAYERS, 1)
    view = tokens(mappers.view, mapper_inputs(t, layers, camera), mappers.view_norm)
    obj = tokens(mappers.object, mapper_inputs(t, layers), mappers.object_norm)
    slots = [text.Slot(positions[text.VIEW], view.words, view.bypass), text.Slot(positions[text.OBJECT], obj.words, obj.bypass)]
    states = text.encode(text_encoder, ids, slots, mappers.alpha)
    shape = (LAYERS, batch, *states.plain.shape[1:])
    return attention.LayerStates(states.plain.reshape(shape), states.bypassed.reshape(shape))


@torch.inference_mode()
def generate(model: StableDiffusionModel, mappers: Mappers, s: NovelViewSettings, report: Reporter) -> np.ndarray:
    """Images [seeds, H, W, 3] in [0, 1] of the object seen from ``s.camera``."""
    device, unet, vae = model.device, model.unet, model.vae
    attention.install(unet)
    samples = len(s.seeds)

    # 1. The template's ids and the unconditional (negative) text
    ids, positions = text.prompt_ids(model.tokenizer, s.template)
    ids = ids.to(device)
    with on_device(model, model.text_encoder):
        negative = core.encode_prompts(model.tokenizer, model.text_encoder, [s.negative], [], 1.0, device).embeds
    report.step("Prompt ready")

    # 2. Latents
    scheduler = core.make_scheduler(s.scheduler, model.scheduler_config)
    scheduler.set_timesteps(s.steps, device=device)
    gens = core.generators(s.seeds)
    factor = model.folder.vae_scale_factor
    shape = (samples, unet.config.in_channels, s.height // factor, s.width // factor)
    latents = core.initial_noise(shape, gens, model.dtype, device) * scheduler.init_noise_sigma
    report.step("Latents ready")

    # 3. Denoise: each step's 16 layers of text states enter through the step hook
    guided = s.guidance > 1.0
    uncond = negative.expand(LAYERS, samples, -1, -1)

    def step_inputs(_x: torch.Tensor, t: torch.Tensor) -> dict[str, object]:
        with on_device(model, model.text_encoder):
            states = layer_states(mappers, model.text_encoder, ids, positions, torch.as_tensor(t).reshape(1), s.camera[None])
        keys, values = (x.expand(-1, samples, -1, -1) for x in (states.keys, states.values))
        if guided:
            keys, values = torch.cat([uncond, keys], dim=1), torch.cat([uncond, values], dim=1)
        return {"cross_attention_kwargs": {"viewneti": attention.LayerStates(keys, values)}}

    placeholder = core.Conditioning(negative.expand(samples * (2 if guided else 1), -1, -1), s.guidance)  # read by no layer
    with on_device(model, unet):
        latents = core.denoise(unet, scheduler, latents, placeholder, scheduler.timesteps, report, gens, step_inputs=step_inputs)

    # 4. Decode
    with on_device(model, vae):
        decoded = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
    report.step("Decoded")
    return core.to_pixels(decoded)
