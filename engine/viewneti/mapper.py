"""ViewNeTI's mappers: (timestep, cross-attention layer, camera) → a word embedding and a bypass vector.

A mapper reads its inputs as one vector x, scaled to about [−1, 1]: the
diffusion timestep t̂ = t/1000·2−1, the UNet layer l̂ = l/16·2−1, and for the
view mapper the camera's numbers (:mod:`engine.viewneti.cameras`). Random
Fourier features [sin(Wx), cos(Wx)] of a fixed matrix W (32 rows, drawn from
seed 0, column j scaled by that input's σ) go through a three-layer MLP. The
output's first half is a word embedding, rescaled to the norm of a real word's
row ("view", "object"); the second half is the bypass vector added after the
text encoder. The parameter names and shapes are the original's
(``net.0``…``net.4``, ``output_layer.0``); W is not a parameter: it is rebuilt
from the seed, as the original's checkpoints assume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .checkpoint import FOURIER_SIGMAS, FREQUENCIES, HIDDEN

TIMESTEPS = 1000  # the DDPM steps t counts
LAYERS = 16  # cross-attention layers of an SD 2.x UNet, in call order
SLOPE = 0.01


def fourier_matrix(sigmas: Sequence[float]) -> torch.Tensor:
    """W [32, n]: standard normal from seed 0 on the CPU (whatever the global seed), column j times ``sigmas[j]``."""
    weights = torch.randn(FREQUENCIES, len(sigmas), generator=torch.Generator("cpu").manual_seed(0))
    return weights * torch.tensor(list(sigmas), dtype=torch.float32)


@dataclass(frozen=True)
class MapperSpec:
    """What a mapper reads and writes: its inputs' σ (timestep, layer, then camera numbers) and the text encoder's width."""

    camera_inputs: int  # 0 for the object mapper
    word_dim: int  # 1024 for SD 2.x
    fourier_sigmas: Sequence[float] = FOURIER_SIGMAS  # σ of the timestep, the layer and every camera number

    @property
    def sigmas(self) -> tuple[float, ...]:
        t, layer, camera = self.fourier_sigmas
        return (t, layer, *(camera,) * self.camera_inputs)


class Mapper(nn.Module):
    """Fourier features → Linear, LayerNorm, LeakyReLU (twice) → Linear to 2 × word_dim."""

    def __init__(self, spec: MapperSpec, seed: int = 0) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("fourier", fourier_matrix(spec.sigmas), persistent=False)
        with torch.random.fork_rng(devices=[]):  # the MLP's initial weights come from ``seed``, the caller's RNG is left alone
            torch.manual_seed(seed)
            self.net = nn.Sequential(
                nn.Linear(2 * FREQUENCIES, HIDDEN),
                nn.LayerNorm(HIDDEN),
                nn.LeakyReLU(SLOPE),
                nn.Linear(HIDDEN, HIDDEN),
                nn.LayerNorm(HIDDEN),
                nn.LeakyReLU(SLOPE),
            )
            self.output_layer = nn.Sequential(nn.Linear(HIDDEN, 2 * spec.word_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, 2 + camera_inputs] → [B, 2 × word_dim]: the word embedding (not yet rescaled), then the bypass vector."""
        projected = x.float() @ self.fourier.T
        features = torch.cat([torch.sin(projected), torch.cos(projected)], dim=-1)
        return self.output_layer(self.net(features))  # type: ignore[no-any-return]


def mapper_inputs(timesteps: torch.Tensor, layers: torch.Tensor, camera: torch.Tensor | None = None) -> torch.Tensor:
    """x for every (timestep, layer) pair given: t̂, l̂ and the (already normalised) camera numbers, [B, 2 + k]."""
    t = timesteps.float() / TIMESTEPS * 2 - 1
    layer = layers.float() / LAYERS * 2 - 1
    columns = [t[:, None], layer[:, None]]
    if camera is not None:
        columns.append(camera.float().expand(len(t), -1))
    return torch.cat(columns, dim=-1)


@dataclass
class Tokens:
    """A mapper's outputs for a batch of (timestep, layer) pairs."""

    words: torch.Tensor  # [B, word_dim]: rescaled to the reference word's norm
    bypass: torch.Tensor  # [B, word_dim]


def tokens(mapper: Mapper, x: torch.Tensor, word_norm: float) -> Tokens:
    out = mapper(x)
    dim = mapper.spec.word_dim
    words = out[:, :dim]
    words = words / words.norm(dim=-1, keepdim=True) * word_norm
    return Tokens(words, out[:, dim:])
