"""The multi-view UNet of MVDream and ImageDream, written here so the published weights load without the repo's code.

Stable Diffusion 2.1-base's UNet in its original (LDM) module names, turned
multi-view: a camera embedding is added to the timestep embedding; every
self-attention runs jointly over the tokens of all frames of one object; and,
for ImageDream (``ip_dim`` > 0), CLIP image features pass through a resampler
into ``ip_dim`` extra context tokens that cross-attention reads through its own
key/value projections, while the image's VAE latent replaces the last frame of
every object at the UNet's input. The parameter names and shapes are those of
``unet/diffusion_pytorch_model.safetensors`` in ``ashawkey/imagedream-ipmv-diffusers``
and ``ashawkey/mvdream-sd2.1-diffusers``; the sizes come from ``unet/config.json``.

The call follows diffusers' UNets (``unet(sample, t, encoder_hidden_states=…)``)
so the shared denoising core drives it; the image tokens are made once per job
with :meth:`MultiViewUNet.image_tokens` and appended to the text context.
Attention is PyTorch's scaled-dot-product attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import MultiViewConfig


class GroupNorm32(nn.GroupNorm):
    """Group normalisation computed in fp32, as the original UNet's ResBlocks and output do (fp16 would overflow)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).type(x.dtype)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding, cosines first (the original's order, not diffusers' default)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / half)
    args = timesteps[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    def __init__(self, channels: int, emb_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(GroupNorm32(32, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(32, out_channels), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_channels, out_channels, 3, padding=1)
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb).type(x.dtype)[..., None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Downsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention of [B, L, heads·d] projections through SDPA (scale 1/√d)."""
    b, n, inner = q.shape
    d = inner // heads

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(b, -1, heads, d).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(q), split(k), split(v))
    return out.transpose(1, 2).reshape(b, n, inner)


class Attention(nn.Module):
    """Self-attention (``context_dim`` None) or cross-attention to the text, plus the image tokens when ``ip_dim`` > 0."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int | None = None, ip_dim: int = 0, ip_weight: float = 1.0):
        super().__init__()
        inner, source = heads * dim_head, context_dim or dim
        self.heads, self.ip_dim, self.ip_weight = heads, ip_dim, ip_weight
        if ip_dim > 0:
            self.to_k_ip = nn.Linear(source, inner, bias=False)
            self.to_v_ip = nn.Linear(source, inner, bias=False)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(source, inner, bias=False)
        self.to_v = nn.Linear(source, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        q = self.to_q(x)
        context = x if context is None else context
        if self.ip_dim > 0:
            text, image = context[:, : -self.ip_dim], context[:, -self.ip_dim :]
            out = _attend(q, self.to_k(text), self.to_v(text), self.heads)
            out = out + self.ip_weight * _attend(q, self.to_k_ip(image), self.to_v_ip(image), self.heads)
        else:
            out = _attend(q, self.to_k(context), self.to_v(context), self.heads)
        return self.to_out(out)  # type: ignore[no-any-return]


class GEGLU(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, hidden * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class TransformerBlock3D(nn.Module):
    """Joint self-attention over all frames of an object, then per-frame cross-attention and the feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, c: MultiViewConfig) -> None:
        super().__init__()
        self.attn1 = Attention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, dim_head, c.context_dim, c.ip_dim, c.ip_weight)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        bf, length, channels = x.shape
        joint = x.reshape(bf // frames, frames * length, channels)  # (b f) l c → b (f l) c
        x = (self.attn1(self.norm1(joint)) + joint).reshape(bf, length, channels)
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x  # type: ignore[no-any-return]


class SpatialTransformer3D(nn.Module):
    def __init__(self, channels: int, c: MultiViewConfig) -> None:
        super().__init__()
        heads, dim_head = c.heads(channels)
        inner = heads * dim_head
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(TransformerBlock3D(inner, heads, dim_head, c) for _ in range(c.transformer_depth))
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:
        b, ch, h, w = x.shape
        tokens = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, ch))
        for block in self.transformer_blocks:
            tokens = block(tokens, context, frames)
        return self.proj_out(tokens).reshape(b, h, w, ch).permute(0, 3, 1, 2) + x  # type: ignore[no-any-return]


class Layers(nn.ModuleList):
    """One entry of ``input_blocks`` / ``middle_block`` / ``output_blocks``: each layer gets what it needs."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, frames: int) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer3D):
                x = layer(x, context, frames)
            else:
                x = layer(x)
        return x


class PerceiverAttention(nn.Module):
    def __init__(self, dim: int, dim_head: int = 64, heads: int = 12) -> None:
        super().__init__()
        inner = dim_head * heads
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        k, v = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)
        return self.to_out(_attend(self.to_q(latents), k, v, self.heads))  # type: ignore[no-any-return]


class Resampler(nn.Module):
    """CLIP image features (257 tokens) → ``queries`` context tokens: learnt latents attending to the features, 4 layers."""

    def __init__(self, dim: int, queries: int, embedding_dim: int, depth: int = 4, dim_head: int = 64, heads: int = 12) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(1, queries, dim) / dim**0.5)
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, dim)
        self.norm_out = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PerceiverAttention(dim, dim_head, heads),
                    nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * 4, bias=False), nn.GELU(), nn.Linear(dim * 4, dim, bias=False)),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        latents = self.latents.expand(features.shape[0], -1, -1)
        x = self.proj_in(features)
        for attention, feed_forward in self.layers:  # type: ignore[misc]
            latents = attention(x, latents) + latents
            latents = feed_forward(latents) + latents
        return self.norm_out(self.proj_out(latents))  # type: ignore[no-any-return]


@dataclass
class UNetOutput:
    sample: torch.Tensor

    def __getitem__(self, index: int) -> torch.Tensor:
        return (self.sample,)[index]


class MultiViewUNet(nn.Module):
    """The port's ``MultiViewUNetModel``: same parameter names and shapes, same arithmetic."""

    def __init__(self, config: MultiViewConfig, image_feature_dim: int = 1280) -> None:
        super().__init__()
        c = self.config = config
        mc, emb_dim = c.model_channels, c.model_channels * 4
        if c.ip_dim > 0:
            self.image_embed = Resampler(c.context_dim, c.ip_dim, image_feature_dim)
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        if c.camera_dim is not None:
            self.camera_embed = nn.Sequential(nn.Linear(c.camera_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attention(channels: int, ds: int) -> list[nn.Module]:
            return [SpatialTransformer3D(channels, c)] if ds in c.attention_resolutions else []

        self.input_blocks = nn.ModuleList([Layers([nn.Conv2d(c.in_channels, mc, 3, padding=1)])])
        skips, ch, ds = [mc], mc, 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                self.input_blocks.append(Layers([ResBlock(ch, emb_dim, mult * mc), *attention(mult * mc, ds)]))
                ch = mult * mc
                skips.append(ch)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(Layers([Downsample(ch)]))
                skips.append(ch)
                ds *= 2
        self.middle_block = Layers([ResBlock(ch, emb_dim, ch), SpatialTransformer3D(ch, c), ResBlock(ch, emb_dim, ch)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                layers = [ResBlock(ch + skips.pop(), emb_dim, mult * mc), *attention(mult * mc, ds)]
                ch = mult * mc
                if level and i == c.num_res_blocks:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Layers(layers))
        self.out = nn.Sequential(GroupNorm32(32, ch), nn.SiLU(), nn.Conv2d(mc, c.out_channels, 3, padding=1))

    @property
    def dtype(self) -> torch.dtype:
        return self.time_embed[0].weight.dtype

    def image_tokens(self, features: torch.Tensor) -> torch.Tensor:
        """CLIP image features [B, 257, 1280] → the ``ip_dim`` context tokens appended after the text's."""
        return self.image_embed(features.to(self.dtype))  # type: ignore[no-any-return]

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        return_dict: bool = True,
        *,
        camera: torch.Tensor | None = None,
        num_frames: int = 1,
        image_latent: torch.Tensor | None = None,
    ) -> Any:
        """``sample`` [B·F, C, h, w], frames of one object together; ``encoder_hidden_states`` the text tokens, followed by
        :meth:`image_tokens` when ``ip_dim`` > 0; ``camera`` [B·F, 16]; ``image_latent`` [B, C, h, w] replaces the last frame
        of every object (the port's image frame)."""
        if sample.shape[0] % num_frames:
            raise ValueError(f"{sample.shape[0]} frames do not split into objects of {num_frames}")
        t = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels).to(sample.dtype))
        if camera is not None:
            emb = emb + self.camera_embed(camera.to(sample.dtype))
        x = sample
        if image_latent is not None:
            x = sample.clone()
            x[num_frames - 1 :: num_frames] = image_latent.to(x.dtype)
        context = encoder_hidden_states.to(x.dtype)
        skips = []
        for block in self.input_blocks:
            x = block(x, emb, context, num_frames)
            skips.append(x)
        x = self.middle_block(x, emb, context, num_frames)
        for block in self.output_blocks:
            x = block(torch.cat([x, skips.pop()], dim=1), emb, context, num_frames)
        out = self.out(x)
        return UNetOutput(out) if return_dict else (out,)
