"""Loading checked model folders onto a device, and keeping one model warm between jobs.

Only one model stays loaded (they are gigabytes); "Release engine" drops it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

from .. import runtime
from ..errors import BadInput
from .sources import ComponentFolder, ModelFolder, check_controlnet_base, check_vae_override, read_json

T = TypeVar("T")

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
class StableDiffusionModel:
    """One text encoder, a UNet and a VAE in the diffusers layout: LDM3D, or Stable Diffusion 2.x as ViewNeTI's base."""

    folder: ModelFolder
    tokenizer: Any
    text_encoder: Any
    unet: Any
    vae: Any
    scheduler_config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    offload: bool  # components wait on the CPU and visit the device in turn


@dataclass
class ControlNetPipelineModel:
    """A Stable Diffusion base (SD: one text encoder; SDXL: two) with its ControlNet."""

    folder: ModelFolder
    controlnet_folder: ComponentFolder
    tokenizers: list[Any]  # one per text encoder
    text_encoders: list[Any]
    unet: Any
    vae: Any
    controlnet: Any
    scheduler_config: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    offload: bool
    zero_empty_negative: bool = True  # SDXL: an empty negative prompt means zero embeddings, as its pipeline config says


class Placed(Protocol):
    """A loaded model: where its components compute, and whether they wait on the CPU in between."""

    device: torch.device
    offload: bool


_loaded: dict[str, Any] = {"key": None, "model": None}


def release() -> None:
    _loaded.update(key=None, model=None)


runtime.on_release(release)


def cached(key: str, build: Callable[[], T]) -> T:
    """The loaded model if ``key`` is the one loaded; else free the old one (and its device memory) first."""
    if _loaded["key"] == key:
        return _loaded["model"]  # type: ignore[no-any-return]
    runtime.release_memory()
    model = build()
    _loaded.update(key=key, model=model)
    return model


def from_pretrained(loader: Callable[..., Any], path: Path, name: str, **kwargs: Any) -> Any:
    """A component through diffusers / transformers, their load errors as one readable line.

    Their own progress bars stay off: a job tells its progress through the engine's reporter, and a bar on stderr would
    land among a batch run's lines (transformers 5 draws one for every model it loads).
    """
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        return loader(path, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(f"Could not load {name} from {path}: {exc}") from None


def place(modules: list[Any], device: torch.device, offload: bool) -> None:
    for module in modules:
        module.to(torch.device("cpu") if offload else device).eval().requires_grad_(False)


def scheduler_config(folder: Path) -> dict[str, Any]:
    return read_json(folder / "scheduler" / "scheduler_config.json")


def load_stable_diffusion(folder: ModelFolder, device: torch.device, dtype: torch.dtype, offload: bool = False) -> StableDiffusionModel:
    """The components from their published subfolders (safetensors unless the folder was allowed pickles).

    Any checked single-text-encoder folder: LDM3D (``inspect_ldm3d``), or SD 1.x/2.x (``inspect_stable_diffusion``).
    """
    key = f"{folder.path}|{folder.revision}|{device}|{dtype}|{offload}"
    return cached(key, lambda: _build_stable_diffusion(folder, device, dtype, offload))


def _build_stable_diffusion(folder: ModelFolder, device: torch.device, dtype: torch.dtype, offload: bool) -> StableDiffusionModel:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    path, safe, name = folder.path, folder.safetensors, folder.name
    unet = from_pretrained(
        UNet2DConditionModel.from_pretrained, path, name, subfolder="unet", use_safetensors=safe["unet"], torch_dtype=dtype
    )
    vae = from_pretrained(AutoencoderKL.from_pretrained, path, name, subfolder="vae", use_safetensors=safe["vae"], torch_dtype=dtype)
    text_encoder = from_pretrained(
        CLIPTextModel.from_pretrained, path / "text_encoder", name, use_safetensors=safe["text_encoder"], dtype=dtype
    )
    tokenizer = from_pretrained(CLIPTokenizer.from_pretrained, path / "tokenizer", name)
    place([unet, vae, text_encoder], device, offload)
    return StableDiffusionModel(folder, tokenizer, text_encoder, unet, vae, scheduler_config(folder.path), device, dtype, offload)


def load_controlnet_pipeline(
    base: ModelFolder,
    controlnet: ComponentFolder,
    device: torch.device,
    dtype: torch.dtype,
    offload: bool = False,
    vae: ComponentFolder | None = None,
) -> ControlNetPipelineModel:
    """An SD or SDXL base with its ControlNet (and optionally another VAE, e.g. SDXL's fp16 fix).

    A ControlNet made for another base is refused here, from the configs, before any weights load.
    """
    check_controlnet_base(base, controlnet)
    if vae is not None:
        check_vae_override(base, vae)
    parts: list[ModelFolder | ComponentFolder] = [base, controlnet, *([vae] if vae is not None else [])]
    key = "|".join(f"{p.path}@{p.revision}" for p in parts) + f"|{device}|{dtype}|{offload}"
    return cached(key, lambda: _build_controlnet_pipeline(base, controlnet, device, dtype, offload, vae))


def _build_controlnet_pipeline(
    base: ModelFolder, controlnet: ComponentFolder, device: torch.device, dtype: torch.dtype, offload: bool, vae: ComponentFolder | None
) -> ControlNetPipelineModel:
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    path, safe, name = base.path, base.safetensors, base.name
    unet = from_pretrained(
        UNet2DConditionModel.from_pretrained, path, name, subfolder="unet", use_safetensors=safe["unet"], torch_dtype=dtype
    )
    net = from_pretrained(
        ControlNetModel.from_pretrained, controlnet.path, controlnet.name, use_safetensors=controlnet.safetensors, torch_dtype=dtype
    )
    vae_config = vae.config if vae is not None else base.vae_config
    # SD-XL's original VAE overflows in fp16 ("force_upcast"): it then stays in fp32, as diffusers decodes it.
    vae_dtype = torch.float32 if dtype == torch.float16 and vae_config.get("force_upcast", False) else dtype
    if vae is not None:
        decoder = from_pretrained(AutoencoderKL.from_pretrained, vae.path, vae.name, use_safetensors=vae.safetensors, torch_dtype=vae_dtype)
    else:
        decoder = from_pretrained(
            AutoencoderKL.from_pretrained, path, name, subfolder="vae", use_safetensors=safe["vae"], torch_dtype=vae_dtype
        )
    encoders = [
        from_pretrained(CLIPTextModel.from_pretrained, path / "text_encoder", name, use_safetensors=safe["text_encoder"], dtype=dtype)
    ]
    tokenizers = [from_pretrained(CLIPTokenizer.from_pretrained, path / "tokenizer", name)]
    if "text_encoder_2" in safe:
        encoders.append(
            from_pretrained(
                CLIPTextModelWithProjection.from_pretrained,
                path / "text_encoder_2",
                name,
                use_safetensors=safe["text_encoder_2"],
                dtype=dtype,
            )
        )
        tokenizers.append(from_pretrained(CLIPTokenizer.from_pretrained, path / "tokenizer_2", name))
    place([unet, net, decoder, *encoders], device, offload)
    # Old SD configs lack clip_sample, which DDIM would read as True; diffusers' SD pipelines patch it to False too.
    schedule = {"clip_sample": False, **scheduler_config(base.path)}
    index_path = path / "model_index.json"
    index = read_json(index_path) if index_path.is_file() else {}
    return ControlNetPipelineModel(
        base,
        controlnet,
        tokenizers,
        encoders,
        unet,
        decoder,
        net,
        schedule,
        device,
        dtype,
        offload,
        zero_empty_negative=bool(index.get("force_zeros_for_empty_prompt", True)),
    )


@contextmanager
def on_device(model: Placed, module: Any) -> Iterator[Any]:
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


def loaded() -> StableDiffusionModel | ControlNetPipelineModel | None:
    return _loaded["model"]  # type: ignore[no-any-return]
