"""``diffusion3d.generate_panorama``: text (or the last capture) → RGBD panorama with LDM3D.

The engine does the model work and writes ``rgb.png``, ``depth16.png``,
``depth.npy`` and ``meta.json``; this operator gathers the options and the
init images, then loads the result and, for panoramas, builds the world sphere.
Also here: the model picker's refresh and the seed dice.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import bpy

from ..engine.diffusion.sources import RGBD_SR
from ..engine.params import SEED_MAX
from ..engine.world import ldm3d
from ..engine.world.ldm3d import RGBDRequest, RGBDResult
from ..engine.world.model_listing import ModelsResult
from .machinery import declared, session
from .machinery.blender_data import load_image
from .machinery.job import EngineJobOperator, ExplainedPoll, UserError


class DIFFUSION3D_OT_generate_panorama(EngineJobOperator, bpy.types.Operator):
    """Generate an RGB + depth panorama from text (or img2img from a capture) with LDM3D"""

    bl_idname = "diffusion3d.generate_panorama"
    bl_label = "Generate RGBD Panorama"
    bl_options = {"REGISTER"}
    job = "generate_rgbd"
    job_label = "Generating panorama"
    __annotations__ = declared.properties(RGBDRequest)

    def read(self, context: bpy.types.Context, request: RGBDRequest) -> RGBDRequest:
        """The init images the chosen start names (the engine reads them), and the output folder."""
        rgb, depth = "", ""
        if request.init == "LAST_CAPTURE":
            settings = getattr(context.scene, "diffusion3d", None)
            folder = Path(settings.last_capture) if settings is not None and settings.last_capture else None
            if folder is None or not (folder / "rgb.png").is_file():
                raise UserError("There is no last capture to start from: capture a panorama first, or choose files")
            rgb, depth = str(folder / "rgb.png"), str(folder / "depth16.png")
        elif request.init == "FILES":
            if not request.init_rgb_path:
                raise UserError("Choose an init RGB file (its depth is optional: without one it is estimated)")
            rgb, depth = request.init_rgb_path, request.init_depth_path
        out_dir = str(session.output_folder(request.out_dir, "panorama"))
        return dataclasses.replace(request, init_rgb_path=rgb, init_depth_path=depth, out_dir=out_dir)

    def finish(self, context: bpy.types.Context, result: RGBDResult) -> dict[str, Any]:
        note = show_panorama(context, result.paths[0], self.build_sphere and self.projection == ldm3d.EQUIRECTANGULAR, "Generated World")
        folder = Path(result.paths[0]["meta.json"]).parent
        where = folder.parent if len(result.paths) > 1 else folder
        upscaled = f" (upscaled {result.upscale}×)" if result.upscale > 1 else ""
        self.report(
            {"WARNING"} if "failed" in note else {"INFO"},
            f"Generated {len(result.paths)} × {result.width}×{result.height} RGBD{upscaled} in {result.seconds:.1f} s into {where}{note}",
        )
        return {"paths": result.paths, **sphere_summary(context, note)}


def sphere_summary(context: bpy.types.Context, note: str) -> dict[str, Any]:
    """The world sphere a job built (the active object), for batch.py's summary; none if it was not built."""
    obj = context.view_layer.objects.active if "built" in note else None
    return {"sphere": {"object": obj.name, "vertices": len(obj.data.vertices)}} if obj is not None else {}


def show_panorama(context: bpy.types.Context, paths: dict[str, str], build_sphere: bool, world_name: str) -> str:
    """An RGBD result's colour as an image, its folder as the last generation, and (if asked) its world sphere; a note for the report."""
    folder = Path(paths["meta.json"]).parent
    image, _ = load_image(paths["rgb.png"])
    image.name = f"{folder.name} rgb"
    settings = getattr(context.scene, "diffusion3d", None)
    if settings is not None:
        settings.last_generation = str(folder)
    if not build_sphere:
        return ""
    try:
        bpy.ops.diffusion3d.build_world_sphere(
            rgb_image=image.name, depth_path=paths["depth16.png"], depth_mode="RELATIVE", name=world_name
        )
        return ", world sphere built"
    except RuntimeError as exc:
        return f"; the world sphere failed: {str(exc).strip().splitlines()[-1]}"


class DIFFUSION3D_OT_find_models(EngineJobOperator, bpy.types.Operator):
    """Look for LDM3D models (generators and upscalers) in the models folder and the Hugging Face cache"""

    bl_idname = "diffusion3d.find_models"
    bl_label = "Find Models"
    job = "list_models"
    job_label = "Finding models"

    def finish(self, context: bpy.types.Context, result: ModelsResult) -> dict[str, Any]:
        found, upscalers = context.window_manager.diffusion3d_models, context.window_manager.diffusion3d_upscalers
        found.clear()
        upscalers.clear()
        for source, label, kind in zip(result.sources, result.labels, result.kinds):
            item = (upscalers if kind == RGBD_SR else found).add()  # each picker offers what it can use
            item.name, item.label, item.kind = source, label, kind
        also = f" and {len(upscalers)} upscaler{'s' if len(upscalers) != 1 else ''}" if len(upscalers) else ""
        self.report({"INFO"}, f"Found {len(found)} LDM3D model{'s' if len(found) != 1 else ''}{also}")
        return {"models": result.sources}


class DIFFUSION3D_OT_random_seed(ExplainedPoll, bpy.types.Operator):
    """Pick a new random seed"""

    bl_idname = "diffusion3d.random_seed"
    bl_label = "Random Seed"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return "" if getattr(context.scene, "diffusion3d", None) is not None else "No scene here to pick a seed for"

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.diffusion3d.generate.seed = random.randrange(SEED_MAX + 1)
        return {"FINISHED"}
