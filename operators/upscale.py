"""``diffusion3d.upscale_panorama``: an RGBD panorama (the last generation, the last capture, or files) → 2× or 4× with LDM3D-sr.

The engine's ``upscale_rgbd`` job writes ``rgb.png``, ``depth16.png``,
``depth.npy`` and ``meta.json`` as every RGBD job; this operator picks the
input, then shows the result and, for panoramas, builds its world sphere.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import bpy

from ..engine.choices import UPSCALE_SOURCES
from ..engine.world.ldm3d import EQUIRECTANGULAR
from ..engine.world.upscale import UpscaleRequest, UpscaleResult
from .ldm3d import show_panorama
from .machinery import declared, session
from .machinery.job import EngineJobOperator, UserError


class DIFFUSION3D_OT_upscale_panorama(EngineJobOperator, bpy.types.Operator):
    """Upscale an RGBD panorama 2× or 4× with LDM3D-sr, seamless around the sphere"""

    bl_idname = "diffusion3d.upscale_panorama"
    bl_label = "Upscale RGBD Panorama"
    bl_options = {"REGISTER"}
    job = "upscale_rgbd"
    job_label = "Upscaling panorama"
    __annotations__ = declared.properties(UpscaleRequest)

    def read(self, context: bpy.types.Context, request: UpscaleRequest) -> UpscaleRequest:
        """The input the source names (the last generation or capture: its rgb.png and depth16.png), and the output folder."""
        rgb, depth = request.rgb, request.depth
        if request.source == "FILES":
            if not rgb or not depth:
                raise UserError("Choose the RGB image and its depth")
        else:
            settings = getattr(context.scene, "diffusion3d", None)
            last = getattr(settings, request.source.lower(), "") if settings is not None else ""
            folder = Path(last) if last else None
            if folder is None or not (folder / "rgb.png").is_file() or not (folder / "depth16.png").is_file():
                what = UPSCALE_SOURCES[request.source].label.lower()
                raise UserError(f"There is no {what} to upscale (its rgb.png and depth16.png): make one first, or choose files")
            rgb, depth = str(folder / "rgb.png"), str(folder / "depth16.png")
        out_dir = str(session.output_folder(request.out_dir, "upscaled"))
        return dataclasses.replace(request, rgb=rgb, depth=depth, out_dir=out_dir)

    def finish(self, context: bpy.types.Context, result: UpscaleResult) -> dict[str, Any]:
        note = show_panorama(context, result.paths, self.build_sphere and result.projection == EQUIRECTANGULAR, "Upscaled World")
        for warning in result.warnings:
            self.report({"WARNING"}, warning)
        folder = Path(result.paths["meta.json"]).parent
        windows = f" in {result.windows} windows" if result.windows > 1 else ""
        self.report(
            {"WARNING"} if "failed" in note else {"INFO"},
            f"Upscaled to {result.width}×{result.height}{windows} in {result.seconds:.1f} s into {folder}{note}",
        )
        return result.summary()
