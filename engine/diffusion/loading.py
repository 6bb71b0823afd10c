"""Loading a checked LDM3D folder onto a device, and keeping one model warm between jobs.

Only one model stays loaded (they are gigabytes); "Release engine" drops it.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch

from .. import runtime
from ..errors import BadInput
from .sources import ModelFolder

DTYPES = {"FP32": torch.float32, "FP16": torch.float16, "BF16": torch.bfloat16}


def pick_device(name: str) -> torch.device:
    name = (name or "AUTO").upper()
    if name == "AUTO":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name == "CUDA" and not torch.cuda.is_available():
        raise BadInput("Device CUDA was chosen but this Python's torch sees no CUDA GPU")
    if name == "MPS" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise BadInput("Device MPS was chosen but this Python's torch has no Apple GPU support")
    if name not in ("CPU", "CUDA", "MPS"):
        raise BadInput(f"Unknown device {name!r} (AUTO, CPU, CUDA or MPS)")
    return torch.device(name.lower())


def pick_dtype(precision: str, device: torch.device) -> torch.dtype:
    """fp16 on GPUs by default; the CPU always computes in fp32 (half precision is slow or unsupported there)."""
    precision = (precision or "AUTO").upper()
    if device.type == "cpu":
        return torch.float32
    if precision == "AUTO":
        return torch.float16
    try:
        return DTYPES[precision]
    except KeyError:
        raise BadInput(f"Unknown precision {precision!r} (AUTO, FP32, FP16 or BF16)") from None


@dataclass
class LDM3DModel:
    folder: ModelFolder
    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler_config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    offload: bool  # components wait on the CPU and visit the device in turn


_loaded: dict[str, Any] = {"key": None, "model": None}


def release() -> None:
    _loaded.update(key=None, model=None)


runtime.on_release(release)


def load_ldm3d(folder: ModelFolder, device: torch.device, dtype: torch.dtype, offload: bool = False) -> LDM3DModel:
    """The components from their published subfolders (safetensors unless the folder was allowed pickles)."""
    key = f"{folder.path}|{folder.revision}|{device}|{dtype}|{offload}"
    if _loaded["key"] == key:
        return _loaded["model"]  # type: ignore[no-any-return]
    runtime.release_memory()  # one model at a time: free the old one (and its device memory) before loading the next
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    path, safe = folder.path, folder.safetensors
    home = torch.device("cpu") if offload else device
    try:
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", use_safetensors=safe["unet"], torch_dtype=dtype)
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", use_safetensors=safe["vae"], torch_dtype=dtype)
        text_encoder = CLIPTextModel.from_pretrained(path / "text_encoder", use_safetensors=safe["text_encoder"], dtype=dtype)
        tokenizer = CLIPTokenizer.from_pretrained(path / "tokenizer")
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(f"Could not load {folder.name} from {path}: {exc}") from None
    scheduler_config = json.loads((path / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    for module in (unet, vae, text_encoder):
        module.to(home).eval().requires_grad_(False)
    model = LDM3DModel(folder, tokenizer, text_encoder, unet, vae, scheduler_config, device, dtype, offload)
    _loaded.update(key=key, model=model)
    return model


@contextmanager
def on_device(model: LDM3DModel, module: Any) -> Iterator[Any]:
    """The module on the compute device for a ``with`` block; back on the CPU after it when offloading."""
    if model.offload:
        module.to(model.device)
    try:
        yield module
    finally:
        if model.offload:
            module.to("cpu")
            if model.device.type == "cuda":
                torch.cuda.empty_cache()


def loaded() -> Optional[LDM3DModel]:
    return _loaded["model"]  # type: ignore[no-any-return]
