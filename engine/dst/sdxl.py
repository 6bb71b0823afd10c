"""SDXL's text conditioning: two text encoders, a pooled embedding and size ids.

SDXL reads the penultimate hidden states of both CLIP encoders side by side,
plus the second encoder's pooled (projected) embedding and six "micro-
conditioning" numbers (original size, crop corner, target size). These travel
to the UNet as ``added_cond_kwargs`` beside the embeddings, so the shared
scheduler loop needs nothing SDXL-specific. The steps follow diffusers' SDXL
pipelines, so the same models and seeds give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..diffusion.core import Conditioning


def _encode(
    tokenizers: Sequence[Any], encoders: Sequence[Any], texts: Sequence[str], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states of every encoder, concatenated; the last encoder's pooled embedding)."""
    hidden, pooled = [], None
    for tokenizer, encoder in zip(tokenizers, encoders):
        ids = tokenizer(
            list(texts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        ).input_ids
        out = encoder(ids.to(device), output_hidden_states=True)
        if out[0].ndim == 2:  # CLIPTextModelWithProjection: text_embeds come first
            pooled = out[0]
        hidden.append(out.hidden_states[-2])
    if pooled is None:
        raise ValueError("SDXL needs a text encoder with a projection (text_encoder_2) for its pooled embedding")
    return torch.cat(hidden, dim=-1), pooled


@torch.inference_mode()
def encode_prompts_xl(
    tokenizers: Sequence[Any],
    encoders: Sequence[Any],
    prompts: Sequence[str],
    negatives: Sequence[str],
    guidance: float,
    size: tuple[int, int],
    device: torch.device,
    zero_empty_negative: bool = True,
) -> Conditioning:
    """Embeddings and ``added_cond_kwargs`` for ``size`` = (height, width), negatives first when guided.

    Empty negatives become zero embeddings when the model asks for it (SDXL's
    ``force_zeros_for_empty_prompt``), as diffusers does when no negative prompt is given.
    """
    dtype = encoders[-1].dtype
    embeds, pooled = _encode(tokenizers, encoders, prompts, device)
    height, width = size
    time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype)
    if guidance > 1.0:
        if zero_empty_negative and not any(n for n in negatives):
            uncond, uncond_pooled = torch.zeros_like(embeds), torch.zeros_like(pooled)
        else:
            uncond, uncond_pooled = _encode(tokenizers, encoders, negatives, device)
        embeds, pooled = torch.cat([uncond.to(dtype), embeds.to(dtype)]), torch.cat([uncond_pooled, pooled])
        time_ids = torch.cat([time_ids, time_ids])
    added = {"text_embeds": pooled.to(device), "time_ids": time_ids.to(device).repeat(len(prompts), 1)}
    return Conditioning(embeds.to(device=device, dtype=dtype), guidance, added)
