"""Cross-attention that reads its layer's own text states: keys from the plain ones, values from the bypassed ones.

Every one of the UNet's 16 cross-attention layers gets a processor with a fixed
layer index (so no call-order counter is needed); the states for all layers of
the current step arrive as ``cross_attention_kwargs={"viewneti": LayerStates}``.
Self-attention processors take the same keyword and ignore it (diffusers hands
the kwargs to every processor and warns about names a processor does not take).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import AttnProcessor2_0


@dataclass
class LayerStates:
    keys: torch.Tensor  # [layers, batch, tokens, width]: plain text states (guided: unconditional first)
    values: torch.Tensor  # [layers, batch, tokens, width]: bypassed text states


def cross_attention_layers(unet: Any) -> list[str]:
    """The cross-attention processors' names in the order a UNet forward calls them: down blocks, middle, up blocks."""
    names = [name for name in unet.attn_processors if name.endswith("attn2.processor")]
    part = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}

    def order(name: str) -> tuple[int, ...]:
        pieces = name.split(".")
        return (part[pieces[0]], *(int(p) for p in pieces if p.isdigit()))

    return sorted(names, key=order)


class SelfAttention(AttnProcessor2_0):
    def __call__(
        self, attn: Any, hidden_states: torch.Tensor, *args: Any, viewneti: LayerStates | None = None, **kwargs: Any
    ) -> torch.Tensor:
        return super().__call__(attn, hidden_states, *args, **kwargs)  # type: ignore[no-any-return]


class ViewCrossAttention(AttnProcessor2_0):
    """Layer ``layer``'s cross-attention: without ViewNeTI states, plain SDPA cross-attention."""

    def __init__(self, layer: int) -> None:
        super().__init__()
        self.layer = layer

    def __call__(  # type: ignore[override]
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        viewneti: LayerStates | None = None,
    ) -> torch.Tensor:
        if viewneti is None:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)  # type: ignore[no-any-return]
        keys, values = viewneti.keys[self.layer], viewneti.values[self.layer]
        batch = hidden_states.shape[0]
        heads = attn.heads
        query = attn.to_q(hidden_states)
        key = attn.to_k(keys.to(hidden_states.dtype))
        value = attn.to_v(values.to(hidden_states.dtype))
        split = lambda x: x.view(batch, -1, heads, x.shape[-1] // heads).transpose(1, 2)  # noqa: E731
        out = F.scaled_dot_product_attention(split(query), split(key), split(value), scale=attn.scale)
        out = out.transpose(1, 2).reshape(batch, -1, heads * out.shape[-1]).to(query.dtype)
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor  # type: ignore[no-any-return]


def install(unet: Any) -> list[str]:
    """Give every cross-attention layer its indexed processor (and self-attention the tolerant one); returns the layer names."""
    layers = cross_attention_layers(unet)
    index = {name: i for i, name in enumerate(layers)}
    unet.set_attn_processor({name: ViewCrossAttention(index[name]) if name in index else SelfAttention() for name in unet.attn_processors})
    return layers
