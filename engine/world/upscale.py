"""The ``upscale_rgbd`` job: an RGB image and its depth → both at 2×, 4× (or any size), with LDM3D-sr, written as files.

The input depth is what LDM3D makes (a 16-bit disparity PNG, near = bright) or
distances (float EXR, TIFF, .npy), converted as for img2img; a file of a
generated or captured sample is read as its ``meta.json`` says (LDM3D's float
``depth.npy`` is disparity). An 8-bit depth is accepted with a warning: the
upscaler expects 16-bit, and 8 bits give it 256 levels. Panoramas (2:1,
equirectangular) stay seamless; sizes above one window are denoised in
overlapping windows that wrap in longitude. Whether the input is a panorama is
asked (``projection``) or, by default, read from the sample's ``meta.json``;
without one only a 2:1 image is taken for a panorama (a flat photo must not
wrap), and the result says which was chosen and why. Everything that
can be checked is checked before the model loads, memory included (a size
that will not fit is refused with the largest that would); files are written
all-or-nothing, as ``generate_rgbd`` writes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..choices import PROJECTIONS, UPSCALE_PROJECTIONS, UPSCALE_SOURCES
from ..diffusion import sources
from ..errors import BadInput
from ..imagefiles import read_image, recorded_path, unit_float
from ..params import (
    INPUT_FILE,
    PIXELS,
    Inspect,
    Note,
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
from .rgbd import MAX_SIDE, OUTPUT_NAMES, disparity_from_metric, read_depth, rgbd_writers, sample_meta, total_memory

EQUIRECTANGULAR, FLAT = PROJECTIONS.ids
AUTO = UPSCALE_PROJECTIONS.default
DEFAULT_UPSCALER = "Intel/ldm3d-sr"
PROMPT = "high quality high resolution uhd 4k image"  # the model card's
WINDOW_PX, OVERLAP_PX = 1024, 256  # a window is the model's training size; neighbours share a quarter
MAX_NOISE_LEVEL = 350  # the published model_index.json's, when a folder does not say
TILED_ABOVE = 2048  # pixels on the longer side beyond which the VAE decodes in tiles unless told


@dataclass
class UpscaleRequest:
    rgb: str = param("", "RGB", "The RGB image (e.g. a panorama's rgb.png)", path=INPUT_FILE, cli_required=True, prop="rgb_path")
    depth: str = param(
        "",
        "Depth",
        "Its depth: 16-bit disparity (depth16.png, near = bright) or distances (EXR, .npy); 8-bit works with a warning",
        path=INPUT_FILE,
        cli_required=True,
        prop="depth_path",
    )
    out_dir: str = output_folder_field("Folder for rgb.png, depth16.png, depth.npy and meta.json; empty: a new folder")
    model: str = model_field(DEFAULT_UPSCALER, "Upscaler", "LDM3D-sr", finds=(sources.RGBD_SR,))
    scale: float = param(
        2.0,
        "Scale",
        "The target is the input × this (2: 1024×512 → 2048×1024)",
        min=1.0,
        max=8.0,
        soft=(1.0, 4.0),
        why="LDM3D-sr was trained for 4×",
    )
    width: int = param(
        0,
        "Width",
        "Or the target size (multiples of 8); 0: by the scale",
        unit=PIXELS,
        min=8,
        max=MAX_SIDE,
        multiple=8,
        also=(0,),
        cli="--size",
        cli_fields=("width", "height"),
    )
    height: int = param(0, "Height", "The target height; 0: by the scale", unit=PIXELS, min=8, max=MAX_SIDE, multiple=8, also=(0,))
    projection: str = param(
        AUTO,
        "Projection",
        "A 360° panorama wraps in longitude; a flat image does not; Auto: as the input's meta.json says, else 2:1 images are panoramas",
        choices=UPSCALE_PROJECTIONS,
        cli_switch=("--flat", FLAT),
    )
    prompt: str = prompt_field(PROMPT, "The upscaler's prompt (the model card's by default)")
    negative_prompt: str = negative_prompt_field()
    steps: int = steps_field(recommended_steps())
    guidance: float = guidance_field(9.0)
    noise_level: int = param(
        20,
        "Noise Level",
        "How much the upscaler may change (its class label)",
        min=0,
        max=MAX_NOISE_LEVEL,
        soft=(0, 100),
        why="LDM3D-sr's max_noise_level",
    )
    seed: int = seed_field("Same seed and settings give the same result")
    scheduler: str = scheduler_field()
    window: int = param(
        WINDOW_PX, "Window", "Pixels on a denoising window's side", unit=PIXELS, min=64, max=MAX_SIDE, multiple=8, soft=(256, 2048)
    )
    overlap: int = param(OVERLAP_PX, "Overlap", "Pixels neighbouring windows share", unit=PIXELS, min=0, max=MAX_SIDE, multiple=8)
    window_batch: int = param(1, "Window Batch", "Windows per UNet call (faster on a large GPU)", min=1, max=64)
    vae_tiling: bool = param(False, "VAE Tiling", f"Always decode in tiles (off: only above {TILED_ABOVE} px)")
    source: str = param("LAST_GENERATION", "Upscale", "What to upscale", choices=UPSCALE_SOURCES, blender=True, cli=None)
    build_sphere: bool = param(True, "Build World Sphere", "Build the displaced world sphere when done (panoramas)", blender=True, cli=None)
    access: sources.ModelAccess = nested(sources.ModelAccess)
    overwrite: bool = overwrite_field()

    def check(self) -> list[Note]:
        if bool(self.width) != bool(self.height):
            refuse("width", "give both the target width and height, or a scale")
        if self.overlap >= self.window:
            refuse("overlap", f"must be below the window ({self.window} px)")
        if self.out_dir:
            planned(Path(self.out_dir), 1, OUTPUT_NAMES, self.overwrite)
        return []

    def models(self) -> list[tuple[str, str, Inspect]]:
        return [("model", self.model, sources.sampled(sources.inspect_ldm3d_sr, self.steps))]


@dataclass
class UpscaleResult:
    paths: dict[str, str] = field(default_factory=dict)  # file name → path
    width: int = 0
    height: int = 0
    windows: int = 0
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    projection: str = ""  # the projection used (AUTO decided): EQUIRECTANGULAR or FLAT
    projection_reason: str = ""  # why: as requested, the input's meta.json, or its aspect

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        return {
            "paths": self.paths,
            "size": [self.width, self.height],
            "windows": self.windows,
            "projection": self.projection.lower(),
            "projection_reason": self.projection_reason,
            "warnings": self.warnings,
        }


def upscale_projection(r: UpscaleRequest, width: int, height: int) -> tuple[str, str]:
    """The projection to upscale with, and why: as requested; for AUTO, as the input's meta.json says (the sample its RGB
    or its depth belongs to), else a 2:1 image is a 360° panorama and any other a flat image."""
    if r.projection != AUTO:
        return r.projection, "as requested"
    for path in (r.rgb, r.depth):
        meta = sample_meta(path)
        said = str(meta.get("projection", "")).upper() if meta is not None else ""
        if said in PROJECTIONS:
            return said, "as the input's meta.json says"
    if width == 2 * height:
        return EQUIRECTANGULAR, f"a 2:1 image ({width}×{height}) without a meta.json: taken for a 360° panorama"
    return FLAT, f"a {width}×{height} image (not 2:1) without a meta.json: a flat image"

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        return {"paths": self.paths, "size": [self.width, self.height], "windows": self.windows, "warnings": self.warnings}


@dataclass
class LowRes:
    rgb: np.ndarray  # H×W×3 float in [0, 1]
    disparity: np.ndarray  # H×W float in [0, 1], near = 1
    warnings: list[str]


def read_low_res(rgb_path: str, depth_path: str) -> LowRes:
    """The input pair as the upscaler reads it, checked: same size, disparity in [0, 1]."""
    image = read_image(Path(rgb_path)).pixels
    if image.ndim != 3 or image.shape[2] < 3:
        raise BadInput(f"{rgb_path} is not an RGB image")
    rgb = np.clip(unit_float(image[..., :3]), 0, 1)
    stored = read_depth(depth_path, depthlib.AUTO)  # a sample's meta.json first: LDM3D's depth.npy is disparity
    if stored.values.shape != rgb.shape[:2]:
        h, w = stored.values.shape
        raise BadInput(f"The depth is {w}×{h} but the RGB is {rgb.shape[1]}×{rgb.shape[0]}; they must be the same size")
    warnings = []
    if stored.mode == depthlib.METRIC:
        disparity = disparity_from_metric(stored.values)
    else:
        disparity = np.clip(stored.values, 0, 1).astype(np.float32)
        if stored.kind.startswith("8-bit"):
            warnings.append(f"{Path(depth_path).name} is an 8-bit depth; the upscaler expects 16-bit: it was converted (256 levels)")
    return LowRes(rgb, disparity, warnings)


def target_size(r: UpscaleRequest, width: int, height: int) -> tuple[int, int]:
    if r.width or r.height:
        target = r.width, r.height
    else:
        target = round(width * r.scale), round(height * r.scale)
    if target[0] % 8 or target[1] % 8:
        raise BadInput(f"The target {target[0]}×{target[1]} must be multiples of 8 on both sides")
    if max(target) > MAX_SIDE:
        raise BadInput(f"{target[0]}×{target[1]} is larger than {MAX_SIDE} pixels on a side")
    return target


def max_noise_level(folder: sources.ModelFolder) -> int:
    """The highest noise level the model was trained with (its ``model_index.json``)."""
    try:
        return int(json.loads((folder.path / "model_index.json").read_text(encoding="utf-8")).get("max_noise_level", MAX_NOISE_LEVEL))
    except (OSError, ValueError, TypeError):
        return MAX_NOISE_LEVEL


def estimate_bytes(
    model: sources.ModelFolder, width: int, height: int, window: int, batch: int, guided: bool, dtype_bytes: int, tiled: bool
) -> int:
    """A rough peak: the weights, plus the larger of one windowed UNet call and the VAE at the target size (or a tile)."""
    factor = model.vae_scale_factor
    side = min(window, max(width, height)) // factor
    unet = (2 if guided else 1) * batch * side * side * 320 * 24 * dtype_bytes
    pixels = min(width, 512) * min(height, 512) if tiled else width * height
    vae = pixels * 128 * 6 * 4  # the VAE runs in float32 (fp16 VAEs of this age overflow)
    return model.weight_bytes * dtype_bytes // 4 + max(unet, vae)


@dataclass
class Upscaled:
    rgb: np.ndarray
    disparity: np.ndarray
    d16: np.ndarray
    meta: dict[str, Any]


def upscale_generated(
    folder: sources.ModelFolder,
    images: Any,
    seeds: list[int],
    scale: int,
    seamless: bool,
    steps: int,
    vae_tiling: bool,
    device: Any,
    dtype: Any,
    report: Reporter,
) -> list[Upscaled]:
    """``generate_rgbd``'s samples (its RGBDImages) upscaled by ``scale`` with the upscaler's defaults, each from its own seed."""
    from ..diffusion import loading
    from .upscale_pipeline import UpscaleSettings, count_windows, upscale

    model = loading.load_stable_diffusion(folder, device, dtype)
    factor = folder.vae_scale_factor
    out = []
    for i, seed in enumerate(seeds):
        height, width = images.rgb[i].shape[:2]
        target = (width * scale, height * scale)
        tiled = vae_tiling or max(target) > TILED_ABOVE
        settings = UpscaleSettings(
            images.rgb[i],
            images.disparity[i],
            *target,
            prompt=PROMPT,
            seed=seed,
            steps=steps,
            seamless=seamless,
            window=WINDOW_PX // factor,
            overlap=OVERLAP_PX // factor,
            vae_tiling=tiled,
        )
        big = upscale(model, settings, report)
        windows = count_windows(*target, factor, WINDOW_PX // factor, OVERLAP_PX // factor, seamless)
        meta = {
            "model": folder.name,
            "revision": folder.revision,
            "scale": scale,
            "steps": steps,
            "guidance": settings.guidance,
            "noise_level": settings.noise_level,
            "windows": windows,
            "base": f"the generated {width}×{height} sample: base/",
        }
        out.append(Upscaled(big.rgb[0], big.disparity[0], big.disparity16[0], meta))
    return out


def upscale_rgbd(r: UpscaleRequest, report: Reporter) -> UpscaleResult:
    started = time.perf_counter()
    out = Path(r.out_dir)
    low = read_low_res(r.rgb, r.depth)
    height, width = low.rgb.shape[:2]
    projection, reason = upscale_projection(r, width, height)
    seamless = projection == EQUIRECTANGULAR
    if seamless and width != 2 * height:
        raise BadInput(f"An equirectangular panorama is 2:1, got {width}×{height} (upscale it as a flat image)")
    target_w, target_h = target_size(r, width, height)
    access = r.access
    folder = sources.inspect_ldm3d_sr(access.locate(r.model, report), r.model, access.allow_pickle)
    noise_cap = max_noise_level(folder)
    if not 0 <= r.noise_level <= noise_cap:
        raise BadInput(f"The noise level must be between 0 and {noise_cap} (the model's max_noise_level), got {r.noise_level}")
    tiled = r.vae_tiling or max(target_w, target_h) > TILED_ABOVE

    import torch

    from ..diffusion import loading
    from .upscale_pipeline import UpscaleSettings, count_windows, upscale

    device = loading.pick_device(access.device)
    dtype = loading.pick_dtype(access.precision, device)
    factor = folder.vae_scale_factor

    def need(w: int, h: int) -> int:
        return estimate_bytes(folder, w, h, r.window, r.window_batch, r.guidance > 1, torch.finfo(dtype).bits // 8, tiled)

    have = total_memory(device)
    if have and need(target_w, target_h) > 0.9 * have:
        fits = next((w for w in range(target_w - 8, 7, -8) if need(w, round(w * target_h / target_w / 8) * 8) <= 0.9 * have), 0)
        fit = f"{fits}×{round(fits * target_h / target_w / 8) * 8} would fit" if fits else "nothing this large fits"
        raise BadInput(
            f"{target_w}×{target_h} needs about {need(target_w, target_h) / 2**30:.1f} GiB but the {device.type} has "
            f"{have / 2**30:.1f} GiB; {fit} (or turn on VAE tiling)"
        )
    windows = count_windows(target_w, target_h, factor, r.window // factor, r.overlap // factor, seamless)
    report.total = r.steps + 5
    report.note(f"Upscaling as {PROJECTIONS[projection].label}: {reason}")
    for warning in low.warnings:
        report.note(warning)
    report.step(f"Loading {folder.name}")
    model = loading.load_stable_diffusion(folder, device, dtype)
    settings = UpscaleSettings(
        low.rgb,
        low.disparity,
        target_w,
        target_h,
        seed=r.seed,
        prompt=r.prompt,
        negative=r.negative_prompt,
        steps=r.steps,
        guidance=r.guidance,
        noise_level=r.noise_level,
        scheduler=r.scheduler,
        seamless=seamless,
        window=r.window // factor,
        overlap=r.overlap // factor,
        window_batch=r.window_batch,
        vae_tiling=tiled,
    )
    images = upscale(model, settings, report)
    report.token.check()  # a cancel during decoding still writes nothing
    meta = _meta(r, folder, width, height, target_w, target_h, (projection, reason), windows, low.warnings)
    paths = write_samples(out, [rgbd_writers(images.rgb[0], images.disparity16[0], images.disparity[0], meta)], r.overwrite)[0]
    report.step("Files written")
    return UpscaleResult(paths, target_w, target_h, windows, low.warnings, time.perf_counter() - started, projection, reason)


def _meta(
    r: UpscaleRequest,
    folder: sources.ModelFolder,
    width: int,
    height: int,
    target_w: int,
    target_h: int,
    projection: tuple[str, str],  # the projection used, and why
    windows: int,
    warnings: list[str],
) -> dict[str, Any]:
    return {
        "upscaled_from": {
            "rgb": recorded_path(r.rgb, r.out_dir),
            "depth": recorded_path(r.depth, r.out_dir),
            "width": width,
            "height": height,
        },
        "prompt": r.prompt,
        "negative_prompt": r.negative_prompt,
        "seed": r.seed,
        **sources.provenance(r.model, folder),
        "scheduler": r.scheduler,
        "steps": r.steps,
        "guidance": r.guidance,
        "noise_level": r.noise_level,
        "width": target_w,
        "height": target_h,
        "projection": projection[0].lower(),
        "projection_reason": projection[1],
        "seamless": projection[0] == EQUIRECTANGULAR,
        "windows": windows,
        "window_px": r.window,
        "overlap_px": r.overlap,
        "warnings": warnings,
        "depth16_png": "16-bit relative inverse depth as the model produces it: near = bright",
        "depth_npy": "float32 relative inverse depth in [0, 1], near = 1 (before 16-bit rounding)",
        "engine_version": __version__,
    }
