"""Multi-view model folders (ImageDream, MVDream): checked before anything heavy loads, then loaded in their published layout.

The published ports (``ashawkey/imagedream-ipmv-diffusers``,
``ashawkey/mvdream-sd2.1-diffusers``) are diffusers folders whose UNet class
ships only as code in the repo (``unet/mv_unet.py``, ``trust_remote_code``).
That code is never run: :class:`~engine.multiview.unet.MultiViewUNet` is built
from ``unet/config.json`` and takes the weights file strictly, every key and
shape. The rest loads through diffusers and transformers as usual. The kind
comes from the UNet config: ``ip_dim`` > 0 is ImageDream (an image prompt, so
``image_encoder/`` and ``feature_extractor/`` must be there), 0 is MVDream
(text only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..diffusion import sources
from ..errors import BadInput
from .config import MultiViewConfig

IMAGEDREAM, MVDREAM = "imagedream", "mvdream"
#: What a download of a multi-view repo fetches (never ``*.py``: the repo's code is not run).
DOWNLOAD_PATTERNS = [
    "model_index.json",
    *(f"{c}/*.json" for c in ("unet", "vae", "text_encoder", "image_encoder", "scheduler", "feature_extractor")),
    *(f"{c}/*.safetensors" for c in ("unet", "vae", "text_encoder", "image_encoder")),
    "tokenizer/*",
]
_CONFIGS = {**sources.CONFIGS}
_IMAGE_PARTS = {"image_encoder": "config.json", "feature_extractor": "preprocessor_config.json"}


@dataclass
class MultiViewFolder:
    path: Path
    name: str
    kind: str  # IMAGEDREAM or MVDREAM
    revision: str
    safetensors: dict[str, bool]
    unet_config: dict[str, Any]
    vae_config: dict[str, Any]
    weight_bytes: int = 0

    @property
    def takes_image(self) -> bool:
        return self.kind == IMAGEDREAM

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae_config.get("block_out_channels", [0] * 4)) - 1)


def inspect_multiview(folder: Path, name: str = "", allow_pickle: bool = False) -> MultiViewFolder:
    """Check the layout and the UNet config; refuse plain Stable Diffusion and an ImageDream without its image encoder."""
    name = name or str(folder)
    if not (folder / "unet" / "config.json").is_file():
        raise BadInput(f"{name} is not a diffusers model folder: no unet/config.json in {folder}")
    unet = sources.read_json(folder / "unet" / "config.json")
    if unet.get("_class_name") != "MultiViewUNetModel":
        what = "a Stable Diffusion UNet" if unet.get("_class_name") == "UNet2DConditionModel" else f"a {unet.get('_class_name')!r}"
        raise BadInput(
            f"{name} has {what}, not a multi-view one: choose an ImageDream or MVDream model (e.g. ashawkey/imagedream-ipmv-diffusers)"
        )
    config = MultiViewConfig.from_json(unet, f"{name}: unet/config.json")
    kind = IMAGEDREAM if config.ip_dim > 0 else MVDREAM
    parts = {**_CONFIGS, **(_IMAGE_PARTS if kind == IMAGEDREAM else {})}
    missing_image = [p for p in _IMAGE_PARTS if kind == IMAGEDREAM and not (folder / p / parts[p]).is_file()]
    if missing_image:
        raise BadInput(f"{name} is an ImageDream model (it takes an image prompt) but has no {' or '.join(missing_image)}")
    sources.check_complete(folder, name, parts, ("tokenizer",))
    vae = sources.read_json(folder / "vae" / "config.json")
    if vae.get("latent_channels", 4) != config.in_channels:
        raise BadInput(f"{name}: the UNet takes {config.in_channels} channels but the VAE's latents have {vae.get('latent_channels', 4)}")
    components = ("unet", "vae", "text_encoder", *(("image_encoder",) if kind == IMAGEDREAM else ()))
    safe, weight_bytes = sources.component_weights(folder, name, components, allow_pickle)
    return MultiViewFolder(folder, name, kind, sources.folder_revision(folder), safe, unet, vae, weight_bytes)


@dataclass
class MultiViewModel:
    folder: MultiViewFolder
    tokenizer: Any
    text_encoder: Any
    unet: Any  # MultiViewUNet
    vae: Any
    image_encoder: Any  # CLIPVisionModel, None for MVDream
    image_processor: Any  # CLIPImageProcessor, None for MVDream
    scheduler_config: dict[str, Any]
    device: Any
    dtype: Any
    offload: bool = False


def read_weights(folder: Path, stem: str, safe: bool) -> dict[str, Any]:
    """A component's tensors: ``stem``.safetensors (or its shards), or, where allowed, the pickled ``stem``.bin read weights-only."""
    import torch
    from safetensors.torch import load_file

    index = folder / f"{stem}.safetensors.index.json" if safe else folder / f"{stem}.bin.index.json"
    if index.is_file():
        files = sorted(set(sources.read_json(index)["weight_map"].values()))
    else:
        files = [f"{stem}.safetensors" if safe else f"{stem}.bin"]
    tensors: dict[str, Any] = {}
    for file in files:
        tensors.update(load_file(folder / file) if safe else torch.load(folder / file, map_location="cpu", weights_only=True))
    return tensors


def check_state_dict(module: Any, weights: dict[str, Any], name: str) -> None:
    """Refuse weights that do not fit the module exactly, naming the first keys that are missing, extra or misshapen."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    misshapen = [
        f"{k} {tuple(weights[k].shape)} (expected {expected[k]})"
        for k in expected
        if k in weights and tuple(weights[k].shape) != expected[k]
    ]
    problems = [
        f"{label}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''} ({len(keys)})"
        for label, keys in (("missing", missing), ("unexpected", extra), ("misshapen", misshapen))
        if keys
    ]
    if problems:
        raise BadInput(f"{name}: the UNet weights do not fit unet/config.json; " + "; ".join(problems))


def load_unet(folder: MultiViewFolder, dtype: Any) -> Any:
    """Our multi-view UNet from ``unet/config.json``, its published weights taken strictly (built without random init)."""
    import torch

    from .unet import MultiViewUNet

    config = MultiViewConfig.from_json(folder.unet_config, f"{folder.name}: unet/config.json")
    feature_dim = 1280
    if folder.takes_image:
        feature_dim = int(sources.read_json(folder.path / "image_encoder" / "config.json").get("hidden_size", 1280))
    with torch.device("meta"):
        unet = MultiViewUNet(config, image_feature_dim=feature_dim)
    weights = read_weights(folder.path / "unet", "diffusion_pytorch_model", folder.safetensors["unet"])
    check_state_dict(unet, weights, folder.name)
    unet.load_state_dict(weights, strict=True, assign=True)
    return unet.to(dtype)


def load_multiview(folder: MultiViewFolder, device: Any, dtype: Any, offload: bool = False) -> MultiViewModel:
    """Every component in its published subfolder; kept loaded for the next job (one model at a time)."""
    from ..diffusion import loading

    key = f"{folder.path}|{folder.revision}|{device}|{dtype}|{offload}"
    return loading.cached(key, lambda: _build(folder, device, dtype, offload))


def _build(folder: MultiViewFolder, device: Any, dtype: Any, offload: bool) -> MultiViewModel:
    from diffusers import AutoencoderKL
    from transformers import CLIPImageProcessorPil, CLIPTextModel, CLIPTokenizer, CLIPVisionModel

    from ..diffusion.loading import from_pretrained, place, scheduler_config

    path, safe, name = folder.path, folder.safetensors, folder.name
    unet = load_unet(folder, dtype)
    vae = from_pretrained(AutoencoderKL.from_pretrained, path, name, subfolder="vae", use_safetensors=safe["vae"], torch_dtype=dtype)
    text_encoder = from_pretrained(
        CLIPTextModel.from_pretrained, path / "text_encoder", name, use_safetensors=safe["text_encoder"], dtype=dtype
    )
    tokenizer = from_pretrained(CLIPTokenizer.from_pretrained, path / "tokenizer", name)
    image_encoder = image_processor = None
    if folder.takes_image:
        image_encoder = from_pretrained(
            CLIPVisionModel.from_pretrained, path / "image_encoder", name, use_safetensors=safe["image_encoder"], dtype=dtype
        )
        # PIL resizing, as the port's (transformers 4) processor did; transformers 5's default one needs torchvision
        image_processor = from_pretrained(CLIPImageProcessorPil.from_pretrained, path / "feature_extractor", name)
    place([m for m in (unet, vae, text_encoder, image_encoder) if m is not None], device, offload)
    return MultiViewModel(
        folder, tokenizer, text_encoder, unet, vae, image_encoder, image_processor, scheduler_config(path), device, dtype, offload
    )
