"""The ``generate_rgbd`` job: LDM3D text → RGBD (or RGBD img2img), written as files.

Everything that can be checked is checked before a model loads: sizes,
strength, steps, init images, the model folder's layout and kind, and a rough
memory estimate. Files are written all-or-nothing. torch is imported only when
the job runs, so this module (its request and result types) loads anywhere.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..choices import INIT_SOURCES, PROJECTIONS
from ..diffusion import sources
from ..errors import BadInput
from ..imagefiles import read_image, unit_float
from ..params import (
    FACTOR,
    INPUT_FILE,
    PIXELS,
    SEED_MAX,
    Inspect,
    Note,
    count_field,
    guidance_field,
    model_field,
    negative_prompt_field,
    nested,
    output_folder_field,
    overwrite_field,
    param,
    prompt_field,
    recommended_steps,
    refuse,
    scheduler_field,
    seed_field,
    steps_field,
)
from ..progress import Reporter
from ..samples import planned, write_samples
from . import depth as depthlib
from .rgbd import BASE, MAX_SIDE, OUTPUT_NAMES, disparity_from_metric, rgbd_writers, total_memory
from .upscale import DEFAULT_UPSCALER

ESTIMATOR_FILES = ["config.json", "preprocessor_config.json", "model.safetensors", "pytorch_model.bin"]
EQUIRECTANGULAR, FLAT = PROJECTIONS.ids
DISPARITY, METRIC = "DISPARITY", "METRIC"
DEFAULT_ESTIMATOR = "Intel/dpt-large"  # for img2img from an RGB image alone
DEFAULT_MODEL = "Intel/ldm3d-pano"
DEFAULT_PROMPT = "panoramic view of a cosy living room with a fireplace, wooden floor and large windows"
UPSCALES = (1, 2, 4)
MAX_COUNT = 16
SIZE_WHY = "the VAE works in 8-pixel blocks; 8192 is 4× LDM3D-sr's 2048 and the memory estimate refuses what a device cannot hold"


@dataclass
class RGBDRequest:
    prompt: str = prompt_field(DEFAULT_PROMPT, "What the panorama shows (img2img may leave it empty)")
    model: str = model_field(DEFAULT_MODEL, "Model", "LDM3D or LDM3D-pano", finds=sources.RGBD_KINDS)
    out_dir: str = output_folder_field("Folder for rgb.png, depth16.png, depth.npy and meta.json; empty: a new folder")
    negative_prompt: str = negative_prompt_field(cli_also=("--negative",))
    projection: str = param(
        EQUIRECTANGULAR, "Projection", "A 360° panorama or a flat image", choices=PROJECTIONS, cli_switch=("--flat", FLAT)
    )
    width: int = param(
        0,
        "Width",
        "0: the init image's, else 1024 for panoramas and the model's size for flat images",
        unit=PIXELS,
        min=8,
        max=MAX_SIDE,
        multiple=8,
        also=(0,),
        soft=(0, 4096),
        why=SIZE_WHY,
    )
    height: int = param(
        0,
        "Height",
        "0: half the width for panoramas",
        unit=PIXELS,
        min=8,
        max=MAX_SIDE,
        multiple=8,
        also=(0,),
        soft=(0, 4096),
        why=SIZE_WHY,
    )
    steps: int = steps_field(recommended_steps())
    guidance: float = guidance_field(7.0)
    seed: int = seed_field()
    count: int = count_field(MAX_COUNT)
    scheduler: str = scheduler_field()
    seamless: bool = param(True, "Seamless 360°", "A panorama's left and right edges meet without a seam (flat images never wrap)")
    init: str = param(
        "NONE", "Start From", "Text only, or img2img from the last capture or files", choices=INIT_SOURCES, blender=True, cli=None
    )
    init_rgb_path: str = param(
        "",
        "Init RGB",
        "img2img: the RGB image to start from",
        path=INPUT_FILE,
        cli="--init-rgb",
        cli_sets=(("init", "FILES"),),
    )
    init_depth_path: str = param(
        "",
        "Init Depth",
        "img2img: its depth (float EXR/.npy distances, or 8/16-bit disparity, near = bright); empty: estimated",
        path=INPUT_FILE,
        cli="--init-depth",
    )
    depth_estimator: str = model_field(DEFAULT_ESTIMATOR, "Depth Estimator", "DPT, estimating the init depth when none is given")
    strength: float = param(0.75, "Strength", "img2img: 0 keeps the input, 1 ignores it", unit=FACTOR, min=0.0, max=1.0)
    vae_tiling: bool = param(False, "VAE Tiling", "Decode in tiles: less memory for large images")
    attention_slicing: bool = param(False, "Attention Slicing", "Less memory, a little slower")
    cpu_offload: bool = param(False, "CPU Offload", "Keep parts of the model on the CPU until used (GPU memory)")
    upscale: int = param(
        1,
        "Upscale",
        "1: as generated; 2 or 4: then LDM3D-sr (2048×1024 or 4096×2048 from 1024×512; the base stays in base/)",
        values=UPSCALES,
    )
    upscaler: str = model_field(DEFAULT_UPSCALER, "Upscaler", "LDM3D-sr", finds=(sources.RGBD_SR,))
    upscale_steps: int = steps_field(50, "LDM3D-sr's denoising steps", label="Upscale Steps")
    build_sphere: bool = param(True, "Build World Sphere", "Build the displaced world sphere when done (panoramas)", blender=True, cli=None)
    access: sources.ModelAccess = nested(sources.ModelAccess)
    overwrite: bool = overwrite_field()
    # Filled by the code (arrays instead of the files):
    init_rgb: np.ndarray | None = None  # H×W×3, uint8 or float in [0, 1]
    init_depth: np.ndarray | None = None  # H×W: disparity in [0, 1] (near = 1) or metric distances
    init_depth_kind: str = DISPARITY

    def check(self) -> list[Note]:
        img2img = bool(self.init_rgb_path) or self.init_rgb is not None
        if not img2img and not self.prompt.strip():
            refuse("prompt", "LDM3D is a text-to-RGBD model: it needs a prompt (only img2img may run without one)")
        if (self.init_depth_path or self.init_depth is not None) and not img2img:
            refuse("init_depth_path", "img2img needs the RGB image its depth belongs to")
        if self.projection == EQUIRECTANGULAR and self.width and self.height and self.width != 2 * self.height:
            refuse("width", f"an equirectangular panorama is 2:1, and the height is {self.height}")
        if self.seed + self.count - 1 > SEED_MAX:
            refuse("seed", f"sample {self.count} would use seed {self.seed + self.count - 1}, above {SEED_MAX}")
        side = max(self.width or 1024, self.height)
        if side * self.upscale > MAX_SIDE:
            refuse("upscale", f"{side} px × {self.upscale} is above {MAX_SIDE} px on a side")
        return []

    def models(self) -> list[tuple[str, str, Inspect]]:
        needed: list[tuple[str, str, Inspect]] = [("model", self.model, sources.sampled(sources.inspect_ldm3d, self.steps))]
        if self.upscale > 1:
            needed.append(("upscaler", self.upscaler, sources.sampled(sources.inspect_ldm3d_sr, self.upscale_steps, "upscale_steps")))
        if self.init_rgb_path and not self.init_depth_path and self.init_depth is None and self.strength < 1:
            needed.append(("depth_estimator", self.depth_estimator, inspect_estimator))
        return needed


def inspect_estimator(folder: Path, name: str, allow_pickle: bool) -> None:
    sources.inspect_transformers_model(folder, name, "dpt", allow_pickle)


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
    if r.init_rgb_path:
        r = dataclasses.replace(r, init_rgb=read_image(r.init_rgb_path).pixels[..., :3], init_rgb_path="")
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
    rgb = unit_float(rgb[..., :3])
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
    rgb, disparity = _init_arrays(r)
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
    seamless = r.seamless and r.projection == EQUIRECTANGULAR
    upscaler = None
    if r.upscale != 1:
        if max(width, height) * r.upscale > MAX_SIDE:
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
