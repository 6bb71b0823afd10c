"""The ``generate_rgbd`` job: LDM3D text → RGBD (or RGBD img2img), written as files.

Everything that can be checked is checked before a model loads: sizes,
strength, steps, init images, the model folder's layout and kind, and a rough
memory estimate. Files are written all-or-nothing. torch is imported only when
the job runs, so this module (its request and result types) loads anywhere.
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..choices import PROJECTIONS, SCHEDULERS
from ..diffusion import sources
from ..errors import BadInput
from ..imagefiles import unit_float
from ..progress import Reporter
from ..samples import check_sampling, planned, write_samples
from . import depth as depthlib
from .rgbd import BASE, MAX_SIDE, OUTPUT_NAMES, disparity_from_metric, rgbd_writers, total_memory
from .upscale import DEFAULT_UPSCALER

ESTIMATOR_FILES = ["config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin"]
EQUIRECTANGULAR, FLAT = PROJECTIONS.ids
DISPARITY, METRIC = "DISPARITY", "METRIC"
DEFAULT_ESTIMATOR = "Intel/dpt-large"  # for img2img from an RGB image alone
UPSCALES = (1, 2, 4)
MAX_COUNT = 16


@dataclass
class RGBDRequest:
    prompt: str
    model: str  # a diffusers folder (absolute, or inside access.models_dir) or a Hugging Face repo id
    out_dir: str
    negative_prompt: str = ""
    projection: str = EQUIRECTANGULAR
    width: int = 0  # 0: the init image's, else 1024 × 512 for panoramas or the model's native square
    height: int = 0
    steps: int = 50
    guidance: float = 7.0
    seed: int = 0
    count: int = 1  # samples; sample i uses seed + i
    scheduler: str = "DDIM"
    seamless: bool | None = None  # None: on for panoramas, off for flat images
    init_rgb: np.ndarray | None = None  # H×W×3, uint8 or float in [0, 1]
    init_depth: np.ndarray | None = None  # H×W: disparity in [0, 1] (near = 1) or metric distances
    init_depth_kind: str = DISPARITY
    init_depth_path: str = ""  # a depth file instead of init_depth: float files are METRIC, 8/16-bit ones DISPARITY
    depth_estimator: str = DEFAULT_ESTIMATOR  # DPT folder or repo id, used when init_rgb comes without a depth
    strength: float = 0.75  # img2img only: 0 keeps the input, 1 ignores it
    vae_tiling: bool = False
    attention_slicing: bool = False
    cpu_offload: bool = False
    upscale: int = 1  # 2 or 4: then LDM3D-sr (a 1024×512 panorama → 2048×1024 or 4096×2048); the base stays in base/
    upscaler: str = DEFAULT_UPSCALER
    upscale_steps: int = 50
    access: sources.ModelAccess = field(default_factory=sources.ModelAccess)
    overwrite: bool = False


@dataclass
class RGBDResult:
    paths: list[dict[str, str]] = field(default_factory=list)  # per sample: file name → path
    width: int = 0
    height: int = 0
    seeds: list[int] = field(default_factory=list)
    kind: str = ""
    revision: str = ""
    seconds: float = 0.0
    unet_calls: int = 0
    upscale: int = 1  # the final size is the generated one × this


def _init_arrays(r: RGBDRequest) -> tuple[np.ndarray | None, np.ndarray | None]:
    if r.init_depth_path:
        stored = depthlib.read_depth_file(r.init_depth_path)
        kind = METRIC if stored.mode == depthlib.METRIC else DISPARITY
        r = dataclasses.replace(r, init_depth=stored.values, init_depth_kind=kind, init_depth_path="")
    if r.init_rgb is None and r.init_depth is None:
        return None, None
    if r.init_rgb is None:
        raise BadInput("img2img needs the RGB image its depth belongs to")
    rgb = np.asarray(r.init_rgb)
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise BadInput(f"The init RGB must be H×W×3, got shape {rgb.shape}")
    rgb = rgb[..., :3].astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    if not np.isfinite(rgb).all():
        raise BadInput("The init RGB has NaN or infinite values")
    if r.init_depth is None:
        return np.clip(rgb, 0, 1), None  # the depth estimator fills it in
    depth = np.asarray(r.init_depth)
    depth = depth[..., 0] if depth.ndim == 3 else depth
    if depth.shape != rgb.shape[:2]:
        raise BadInput(f"Init RGB ({rgb.shape[1]}×{rgb.shape[0]}) and depth ({depth.shape[1]}×{depth.shape[0]}) must be the same size")
    disparity: np.ndarray
    if r.init_depth_kind == METRIC:
        disparity = disparity_from_metric(depth)
    elif r.init_depth_kind == DISPARITY:
        disparity = unit_float(depth)
        if not np.isfinite(disparity).all() or disparity.min() < 0 or disparity.max() > 1:
            raise BadInput("An init disparity must lie in [0, 1] (near = 1); use the METRIC kind for distances")
    else:
        raise BadInput(f"Unknown init depth kind {r.init_depth_kind!r} ({DISPARITY} or {METRIC})")
    return np.clip(rgb, 0, 1), disparity


def check_request(r: RGBDRequest, model: sources.ModelFolder) -> tuple[int, int, np.ndarray | None, np.ndarray | None]:
    """Everything but memory: returns (width, height, init RGB, init disparity)."""
    PROJECTIONS.get(r.projection)
    SCHEDULERS.get(r.scheduler)
    check_sampling(r.steps, r.count, MAX_COUNT, r.guidance, r.seed)
    if not 0.0 <= r.strength <= 1.0:
        raise BadInput(f"Strength must be between 0 and 1, got {r.strength}")
    rgb, disparity = _init_arrays(r)
    if rgb is None and not r.prompt.strip():
        raise BadInput("LDM3D is a text-to-RGBD model: it needs a prompt (only img2img may run without one)")
    width, height = r.width, r.height
    if rgb is not None:
        ih, iw = rgb.shape[:2]
        width, height = width or iw, height or ih
        if (iw, ih) != (width, height):
            raise BadInput(f"The init images are {iw}×{ih} but the output is {width}×{height}; they must match")
    panoramic = r.projection == EQUIRECTANGULAR
    if not width and not height:
        width, height = (1024, 512) if panoramic else (model.native_size, model.native_size)
    elif not height:
        height = width // 2 if panoramic else width
    elif not width:
        width = 2 * height if panoramic else height
    multiple = max(8, model.vae_scale_factor)
    if width % multiple or height % multiple or width < multiple or height < multiple:
        raise BadInput(f"Width and height must be positive multiples of {multiple}, got {width}×{height}")
    if max(width, height) > MAX_SIDE:
        raise BadInput(f"{width}×{height} is larger than {MAX_SIDE} pixels on a side")
    if panoramic and width != 2 * height:
        raise BadInput(f"An equirectangular panorama is 2:1 (width = 2 × height), got {width}×{height}")
    return width, height, rgb, disparity


def estimate_bytes(model: sources.ModelFolder, width: int, height: int, count: int, guided: bool, dtype_bytes: int, tiled: bool) -> int:
    """A rough upper estimate of peak memory: weights plus the larger of UNet and VAE-decoder activations.

    The UNet keeps about two dozen 320-channel feature maps at latent size per
    batch entry; the VAE decoder a handful of 128-channel maps at full size
    (a 512-pixel tile when tiled).
    """
    factor = model.vae_scale_factor
    latent = (width // factor) * (height // factor)
    unet = (2 if guided else 1) * count * latent * 320 * 24 * dtype_bytes
    pixels = min(width, 512) * min(height, 512) if tiled else width * height
    vae = count * pixels * 128 * 6 * dtype_bytes
    return model.weight_bytes * dtype_bytes // 4 + max(unet, vae)


def _meta(r: RGBDRequest, model: sources.ModelFolder, width: int, height: int, seed: int, seamless: bool, img2img: bool) -> dict[str, Any]:
    return {
        "prompt": r.prompt,
        "negative_prompt": r.negative_prompt,
        "seed": seed,
        **sources.provenance(r.model, model),
        "scheduler": r.scheduler,
        "steps": r.steps,
        "guidance": r.guidance,
        "width": width,
        "height": height,
        "projection": r.projection.lower(),
        "seamless": seamless,
        "strength": r.strength if img2img else None,
        "img2img": img2img,
        "depth16_png": "16-bit relative inverse depth as the model produces it: near = bright",
        "depth_npy": "float32 relative inverse depth in [0, 1], near = 1 (before 16-bit rounding)",
        "engine_version": __version__,
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def generate_rgbd(r: RGBDRequest, report: Reporter) -> RGBDResult:
    started = time.perf_counter()
    out_dir = Path(r.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInput(f"Output folder {out_dir} is a file")
    base_names = tuple(f"{BASE}/{name}" for name in OUTPUT_NAMES if name != "meta.json") if r.upscale != 1 else ()
    planned(out_dir, r.count, OUTPUT_NAMES + base_names, r.overwrite)
    access = r.access
    path = access.locate(r.model, report)
    model_folder = sources.inspect_ldm3d(path, r.model, access.allow_pickle)
    width, height, init_rgb, init_disparity = check_request(r, model_folder)
    seamless = r.projection == EQUIRECTANGULAR if r.seamless is None else bool(r.seamless)
    upscaler = None
    if r.upscale != 1:
        if r.upscale not in UPSCALES or max(width, height) * r.upscale > MAX_SIDE:
            raise BadInput(f"Upscale by 2 or 4 up to {MAX_SIDE} px on a side, not {width}×{height} × {r.upscale}")
        upscaler = sources.inspect_ldm3d_sr(access.locate(r.upscaler, report), r.upscaler, access.allow_pickle)
    img2img = init_rgb is not None and r.strength < 1.0
    estimator = None
    if img2img and init_disparity is None:
        try:
            estimator = access.locate(r.depth_estimator, report, ESTIMATOR_FILES)
        except BadInput as exc:
            raise BadInput(f"No init depth was given, and the depth estimator is not available: {exc}") from None
    report.total = (min(int(r.steps * r.strength), r.steps) if img2img else r.steps) + 5 + (estimator is not None)
    report.total += r.count * (r.upscale_steps + 3) + 1 if upscaler is not None else 0

    import torch  # the heavy part starts here

    from ..diffusion import loading
    from . import ldm3d_pipeline as pipeline

    device = loading.pick_device(access.device)
    dtype = loading.pick_dtype(access.precision, device)
    need = estimate_bytes(model_folder, width, height, r.count, r.guidance > 1, torch.finfo(dtype).bits // 8, r.vae_tiling)
    have = total_memory(device)
    if have and need > 0.9 * have:
        raise BadInput(
            f"{width}×{height} × {r.count} needs about {need / 2**30:.1f} GiB but the {device.type} has "
            f"{have / 2**30:.1f} GiB; use a smaller size or count, or VAE tiling"
        )
    if estimator is not None and init_rgb is not None:
        from .depth_estimator import estimate_disparity

        report.step(f"Estimating depth with {r.depth_estimator}")
        init_disparity = estimate_disparity(init_rgb, estimator, r.depth_estimator, access.allow_pickle, device)
    report.step(f"Loading {model_folder.name}")
    model = loading.load_stable_diffusion(model_folder, device, dtype, offload=r.cpu_offload and device.type != "cpu")
    seeds = [r.seed + i for i in range(r.count)]
    settings = pipeline.RGBDSettings(
        prompts=[r.prompt] * r.count,
        negatives=[r.negative_prompt] * r.count,
        seeds=seeds,
        width=width,
        height=height,
        steps=r.steps,
        guidance=r.guidance,
        scheduler=r.scheduler,
        seamless=seamless,
        strength=r.strength if img2img else 1.0,
        init_rgb=init_rgb,
        init_disparity=init_disparity,
        vae_tiling=r.vae_tiling,
        attention_slicing=r.attention_slicing,
    )
    images = pipeline.generate(model, settings, report)
    report.token.check()  # a cancel during decoding still writes nothing

    result = RGBDResult(width=width, height=height, seeds=seeds, kind=model_folder.kind, revision=model_folder.revision)
    estimated = {"init_depth": f"estimated with {r.depth_estimator}"} if estimator is not None else {}
    metas = [{**_meta(r, model_folder, width, height, seed, seamless, img2img), **estimated} for seed in seeds]
    writers = [rgbd_writers(images.rgb[i], images.disparity16[i], images.disparity[i], meta) for i, meta in enumerate(metas)]
    if upscaler is not None:
        from .upscale import upscale_generated

        report.step(f"Loading {upscaler.name}")
        upscaled = upscale_generated(upscaler, images, seeds, r.upscale, seamless, r.upscale_steps, r.vae_tiling, device, dtype, report)
        for i, (big, meta) in enumerate(zip(upscaled, metas)):
            up = {**meta, "width": width * r.upscale, "height": height * r.upscale, "upscale": big.meta}
            base = {f"{BASE}/{name}": write for name, write in writers[i].items() if name != "meta.json"}
            writers[i] = {**rgbd_writers(big.rgb, big.d16, big.disparity, up), **base}
        result.width, result.height, result.upscale = width * r.upscale, height * r.upscale, r.upscale
    result.paths = write_samples(out_dir, writers, r.overwrite)
    report.step("Files written")
    result.seconds = time.perf_counter() - started
    result.unet_calls = images.unet_calls
    return result
