"""``diffusion3d.upscale_panorama``: an RGBD panorama (the last generation, the last capture, or files) → 2× or 4× with LDM3D-sr.

The engine's ``upscale_rgbd`` job writes ``rgb.png``, ``depth16.png``,
``depth.npy`` and ``meta.json`` as every RGBD job; this operator picks the
input, then shows the result and, for panoramas, builds its world sphere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..engine.choices import PROJECTIONS, UPSCALE_SOURCES
from ..engine.world.ldm3d import EQUIRECTANGULAR
from ..engine.world.upscale import DEFAULT_UPSCALER, OVERLAP_PX, PROMPT, WINDOW_PX, UpscaleRequest, UpscaleResult
from .ldm3d import show_panorama
from .machinery import session
from .machinery.job import EngineJobOperator, UserError

UPSCALE_OPTIONS: dict[str, Any] = {
    "source": EnumProperty(name="Upscale", items=UPSCALE_SOURCES.items(), default=UPSCALE_SOURCES.default),
    "rgb_path": StringProperty(name="RGB", subtype="FILE_PATH", default=""),
    "depth_path": StringProperty(
        name="Depth",
        description="16-bit disparity (near = bright), or distances (EXR, .npy); 8-bit works with a warning",
        subtype="FILE_PATH",
    ),
    "model": StringProperty(name="Upscaler", description="LDM3D-sr: a folder or repo id", default=DEFAULT_UPSCALER),
    "scale": IntProperty(name="Scale", description="2: 1024×512 → 2048×1024; 4: → 4096×2048", default=2, min=1, max=8),
    "projection": EnumProperty(name="Projection", items=PROJECTIONS.items(), default=PROJECTIONS.default),
    "prompt": StringProperty(name="Prompt", default=PROMPT),
    "steps": IntProperty(name="Steps", default=50, min=1, soft_max=200),
    "guidance": FloatProperty(name="Guidance", default=9.0, min=0.0, soft_max=20.0),
    "noise_level": IntProperty(name="Noise Level", description="How much the upscaler may change (its class label)", default=20, min=0),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "window": IntProperty(name="Window", description="Pixels on a denoising window's side", default=WINDOW_PX, min=64, step=64),
    "overlap": IntProperty(name="Overlap", description="Pixels neighbouring windows share", default=OVERLAP_PX, min=0),
    "vae_tiling": BoolProperty(name="VAE Tiling", description="Always decode in tiles (off: only above 2048 px)", default=False),
    "build_sphere": BoolProperty(name="Build World Sphere", description="Build the displaced world sphere when done", default=True),
    "output_dir": StringProperty(
        name="Output Folder", description="Empty: a new folder under the default output folder", subtype="DIR_PATH"
    ),
    "overwrite": BoolProperty(name="Overwrite", default=False),
}


class DIFFUSION3D_OT_upscale_panorama(EngineJobOperator, bpy.types.Operator):
    """Upscale an RGBD panorama 2× or 4× with LDM3D-sr, seamless around the sphere"""

    bl_idname = "diffusion3d.upscale_panorama"
    bl_label = "Upscale RGBD Panorama"
    bl_options = {"REGISTER"}
    job_label = "Upscaling panorama"
    __annotations__ = dict(UPSCALE_OPTIONS)

    def _inputs(self, context: bpy.types.Context) -> tuple[str, str]:
        if self.source == "FILES":
            if not self.rgb_path or not self.depth_path:
                raise UserError("Choose the RGB image and its depth")
            return bpy.path.abspath(self.rgb_path), bpy.path.abspath(self.depth_path)
        settings = getattr(context.scene, "diffusion3d", None)
        last = getattr(settings, self.source.lower(), "") if settings is not None else ""
        folder = Path(last) if last else None
        if folder is None or not (folder / "rgb.png").is_file() or not (folder / "depth16.png").is_file():
            what = UPSCALE_SOURCES[self.source].label.lower()
            raise UserError(f"There is no {what} to upscale (its rgb.png and depth16.png): make one first, or choose files")
        return str(folder / "rgb.png"), str(folder / "depth16.png")

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        rgb, depth = self._inputs(context)
        request = UpscaleRequest(
            rgb=rgb,
            depth=depth,
            out_dir=str(session.output_folder(self.output_dir, "upscaled")),
            model=self.model,
            scale=float(self.scale),
            projection=self.projection,
            prompt=self.prompt,
            steps=self.steps,
            guidance=self.guidance,
            noise_level=self.noise_level,
            seed=self.seed,
            window=self.window,
            overlap=self.overlap,
            vae_tiling=True if self.vae_tiling else None,
            access=session.model_access(session.preferences(context)),
            overwrite=self.overwrite,
        )
        return "upscale_rgbd", request

    def finish(self, context: bpy.types.Context, result: UpscaleResult) -> None:
        note = show_panorama(context, result.paths, self.build_sphere and self.projection == EQUIRECTANGULAR, "Upscaled World")
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        folder = Path(result.paths["meta.json"]).parent
        windows = f" in {result.windows} windows" if result.windows > 1 else ""
        self.report(
            {"WARNING"} if "failed" in note else {"INFO"},
            f"Upscaled to {result.width}×{result.height}{windows} in {result.seconds:.1f} s into {folder}{note}",
        )
