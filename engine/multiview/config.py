"""The multi-view UNet's ``unet/config.json``, checked without torch (so a model is checked before any work, in any Python).

The UNet itself is :mod:`engine.multiview.unet`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import BadInput

#: Config keys the port's constructor takes, at the values this implementation supports (None: any value).
_FIXED = {
    "dims": 2,
    "conv_resample": True,
    "num_classes": None,
    "use_scale_shift_norm": False,
    "resblock_updown": False,
    "n_embed": None,
    "num_attention_blocks": None,
    "adm_in_channels": None,
    "num_heads_upsample": -1,
}
_FREE = {"_class_name", "_diffusers_version", "_name_or_path", "image_size", "use_checkpoint", "dropout", "use_fp16", "use_bf16"}


@dataclass(frozen=True)
class MultiViewConfig:
    """``unet/config.json``, checked: the sizes that shape the state dict."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_res_blocks: int = 2
    num_head_channels: int = 64
    num_heads: int = -1
    transformer_depth: int = 1
    context_dim: int = 1024
    camera_dim: int | None = 16
    ip_dim: int = 0  # image-prompt tokens (ImageDream: 16); 0 for MVDream
    ip_weight: float = 1.0

    @classmethod
    def from_json(cls, config: dict[str, Any], name: str = "unet/config.json") -> MultiViewConfig:
        if config.get("_class_name", "MultiViewUNetModel") != "MultiViewUNetModel":
            raise BadInput(f"{name}: a {config['_class_name']!r}, not a multi-view UNet (MultiViewUNetModel)")
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(k for k in config if k not in fields and k not in _FIXED and k not in _FREE)
        if unknown:
            raise BadInput(f"{name} has settings this multi-view UNet does not know: {', '.join(unknown)}")
        unsupported = [f"{k}={config[k]!r}" for k, v in _FIXED.items() if k in config and config[k] != v]
        if unsupported:
            raise BadInput(f"{name} asks for what this multi-view UNet does not implement: {', '.join(unsupported)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in fields}
        if values.get("ip_dim") is None:
            values["ip_dim"] = 0
        made = cls(**values)
        try:
            made.check(name)
        except TypeError:  # a list where a number belongs, or the like
            raise BadInput(f"{name}: a setting has the wrong type ({made})") from None
        return made

    def check(self, name: str) -> None:
        if not isinstance(self.transformer_depth, int) or self.transformer_depth < 1:
            raise BadInput(f"{name}: transformer_depth must be a positive whole number, got {self.transformer_depth!r}")
        widths = [self.model_channels * m for m in self.channel_mult]
        if self.model_channels < 1 or any(w % 32 for w in widths):
            raise BadInput(f"{name}: channel counts {widths} must be multiples of 32 (group normalisation)")
        per_head, heads = self.num_head_channels, self.num_heads
        for width in widths:
            if not (per_head > 0 and width % per_head == 0 or per_head == -1 and heads > 0 and width % heads == 0):
                raise BadInput(
                    f"{name}: {width} channels do not split into attention heads (num_head_channels {per_head}, num_heads {heads})"
                )

    def heads(self, channels: int) -> tuple[int, int]:
        """(heads, channels per head) of an attention layer on ``channels``."""
        if self.num_head_channels == -1:
            return self.num_heads, channels // self.num_heads
        return channels // self.num_head_channels, self.num_head_channels
