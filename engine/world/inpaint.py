"""A layered world's hidden background filled by LDM3D: colour and depth together, on the shared denoising core.

The background panorama (the foreground peeled off, filled geometrically: :mod:`.layers`) is the init; the hole behind
the foreground is generated while everything else is kept (``ldm3d_pipeline``: blended latent diffusion, the known
latents put back after every step, longitude wrapping as generation does). The model works at its own size (LDM3D-pano:
1024×512); its colours and depth replace the hole's only. Distances go to the model as the relative inverse depth it
learned (the panorama's own nearest = 1, farthest = 0) and come back through the same mapping, so the filled depth
joins the kept one; :func:`.layers.peel` then pushes any of it behind the occluder it replaces.

torch is imported only when a fill runs, so the options load anywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..diffusion import sources
from ..params import (
    PIXELS,
    Inspect,
    guidance_field,
    model_field,
    negative_prompt_field,
    param,
    prompt_field,
    recommended_steps,
    scheduler_field,
    seed_field,
    steps_field,
)
from ..progress import Reporter
from .layers import Painter

if TYPE_CHECKING:
    from ..diffusion.loading import StableDiffusionModel

#: LDM3D-pano's own width, the size a fill runs at unless asked otherwise
NATIVE_WIDTH = 1024


@dataclass
class InpaintOptions:
    """How a layered world's background is filled behind its foreground: by an LDM3D model, or (no model) geometrically."""

    inpaint_model: str = model_field(
        "",
        "Inpaint Model",
        "LDM3D (the panorama model for 360°) that paints the background hidden behind the foreground, colour and depth; "
        "empty: the geometric fill, offline",
        finds=sources.RGBD_KINDS,
    )
    prompt: str = prompt_field("", "What the hidden background shows; empty: the panorama's own prompt (its meta.json), else none")
    negative_prompt: str = negative_prompt_field()
    steps: int = steps_field(recommended_steps())
    guidance: float = guidance_field(7.0)
    seed: int = seed_field("The same seed and settings fill the same way")
    scheduler: str = scheduler_field()
    inpaint_width: int = param(
        NATIVE_WIDTH,
        "Inpaint Width",
        "The width the model paints at (the panorama is scaled to it and the fill back); 0: the panorama's own",
        unit=PIXELS,
        min=128,
        max=4096,
        multiple=128,
        also=(0,),
        why="the UNet halves 8-pixel latent cells three times: a 360° panorama's height, half its width, is a multiple of 64",
    )

    def models(self) -> list[tuple[str, str, Inspect]]:
        if not self.inpaint_model:
            return []
        return [("inpaint_model", self.inpaint_model, sources.sampled(sources.inspect_ldm3d, self.steps))]


def panorama_prompt(options: InpaintOptions, *files: str) -> str:
    """The prompt given, else the one in a ``meta.json`` beside any of ``files`` (an LDM3D result's), else none."""
    if options.prompt.strip():
        return options.prompt
    for file in files:
        meta = Path(file).parent / "meta.json" if file else None
        if meta is not None and meta.is_file():
            try:
                prompt = json.loads(meta.read_text(encoding="utf-8")).get("prompt", "")
            except (OSError, ValueError):
                continue
            if isinstance(prompt, str) and prompt.strip():
                return prompt
    return ""


def model_painter(options: InpaintOptions, access: sources.ModelAccess, prompt: str, wrap: bool, report: Reporter) -> Painter:
    """A :data:`Painter` painting with ``options.inpaint_model`` (loaded on the first fill)."""
    path = access.locate(options.inpaint_model, report)
    folder = sources.inspect_ldm3d(path, options.inpaint_model, access.allow_pickle)

    def fill(rgb: np.ndarray, distance: np.ndarray, hole: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from ..diffusion import loading

        device = loading.pick_device(access.device)
        report.step(f"Loading {folder.name}")
        model = loading.load_stable_diffusion(folder, device, loading.pick_dtype(access.precision, device))
        return paint(model, options, prompt, rgb, distance, hole, wrap, report)

    return fill


def working_size(width: int, height: int, asked: int, wrap: bool) -> tuple[int, int]:
    """The size the model paints at: ``asked`` wide (0: the panorama's, to a multiple of 128), half as high for a 360°
    panorama, else the panorama's aspect to a multiple of 64."""
    w = asked or max(128, width // 128 * 128)
    h = w // 2 if wrap else max(64, round(height * w / width / 64) * 64)
    return w, h


def paint(
    model: StableDiffusionModel,
    options: InpaintOptions,
    prompt: str,
    rgb: np.ndarray,
    distance: np.ndarray,
    hole: np.ndarray,
    wrap: bool,
    report: Reporter,
) -> tuple[np.ndarray, np.ndarray]:
    """``hole`` of the background (``rgb``, ``distance``) painted by ``model``; the rest returned as it was."""
    import torch

    from . import ldm3d_pipeline as pipeline

    height, width = distance.shape
    w, h = working_size(width, height, options.inpaint_width, wrap)
    near, far = float(distance.min()), float(distance.max())
    span = 1.0 / near - 1.0 / far if far > near else 1.0
    disparity = (1.0 / distance - 1.0 / far) / span  # the panorama's nearest = 1, its farthest = 0

    def resized(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(values, np.float32).reshape(*values.shape[:2], -1)).permute(2, 0, 1)[None]
        out = torch.nn.functional.interpolate(x, size=(size[1], size[0]), mode="bilinear", align_corners=False, antialias=True)
        return out[0].permute(1, 2, 0).numpy().reshape(size[1], size[0], *values.shape[2:])

    small_hole = resized(hole.astype(np.float32), (w, h)) > 0  # every working pixel touching the hole is painted
    settings = pipeline.RGBDSettings(
        prompts=[prompt],
        negatives=[options.negative_prompt],
        seeds=[options.seed],
        width=w,
        height=h,
        steps=options.steps,
        guidance=options.guidance,
        scheduler=options.scheduler,
        seamless=wrap,
        init_rgb=np.clip(resized(rgb, (w, h)), 0, 1),
        init_disparity=np.clip(resized(disparity, (w, h)), 0, 1),
        fill=small_hole,
    )
    painted = pipeline.generate(model, settings, report)
    painted_rgb = np.clip(resized(painted.rgb[0], (width, height)), 0, 1)
    painted_disparity = np.clip(resized(painted.disparity[0], (width, height)), 0, 1)
    painted_distance = 1.0 / (painted_disparity * span + 1.0 / far)
    out_rgb = np.where(hole[..., None], painted_rgb, rgb).astype(np.float32)
    out_distance = np.where(hole, painted_distance, distance).astype(np.float32)
    return out_rgb, out_distance
