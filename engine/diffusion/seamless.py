"""Seamless 360°: convolutions that see an equirectangular image as wrapping in longitude.

Every padded ``Conv2d`` of the given models pads its width circularly (the
left edge continues the right one) and its height with zeros (the poles do
not wrap), for the length of a ``with`` block. diffusers' VAE encoder
downsamples with an explicit one-pixel zero pad on the right and bottom; that
pad wraps too. Attention and group norms are global, so with every convolution
wrapped the whole UNet and VAE commute with rolling the width by a multiple
of their downsampling factor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _wrapped_conv(conv: nn.Conv2d, left: int, right: int, top: int, bottom: int) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (left, right, 0, 0), mode="circular")
        x = F.pad(x, (0, 0, top, bottom))
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)

    return forward


def _is_zero_padded_downsample(module: nn.Module) -> bool:
    """diffusers' ``Downsample2D(padding=0)``: pads (0, 1, 0, 1) itself before a stride-2 conv."""
    return type(module).__name__ == "Downsample2D" and getattr(module, "use_conv", False) and module.padding == 0


@contextmanager
def wrap_longitude(*models: nn.Module) -> Iterator[None]:
    patched: list[nn.Module] = []
    downsamples: list[nn.Module] = []
    try:
        for model in models:
            for module in model.modules():
                if _is_zero_padded_downsample(module):
                    conv = module.conv
                    conv.forward = _wrapped_conv(conv, 0, 1, 0, 1)  # type: ignore[method-assign]
                    module.padding = -1  # skip its own zero pad; the conv now pads
                    patched.append(conv)
                    downsamples.append(module)
            for module in model.modules():
                if isinstance(module, nn.Conv2d) and module not in patched and isinstance(module.padding, tuple):
                    ph, pw = module.padding
                    if (ph or pw) and module.padding_mode == "zeros":
                        module.forward = _wrapped_conv(module, pw, pw, ph, ph)  # type: ignore[method-assign]
                        patched.append(module)
        yield
    finally:
        for module in patched:
            del module.forward  # back to the class's own
        for module in downsamples:
            module.padding = 0
