"""``diffusion3d.generate_panorama``: text (or the last capture) → RGBD panorama with LDM3D.

The engine does the model work and writes ``rgb.png``, ``depth16.png``,
``depth.npy`` and ``meta.json``; this operator gathers the options and the
init images, then loads the result and, for panoramas, builds the world sphere.
Also here: the model picker's refresh and the seed dice.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..engine.choices import PROJECTIONS, SCHEDULERS
from ..engine.diffusion.sources import RGBD_SR
from ..engine.world import ldm3d
from ..engine.world.ldm3d import RGBDRequest, RGBDResult
from ..engine.world.model_listing import ModelsRequest, ModelsResult
from ..engine.world.upscale import DEFAULT_UPSCALER
from .machinery import session
from .machinery.blender_data import image_pixels, load_image
from .machinery.job import EngineJobOperator, UserError

GENERATE_OPTIONS: dict[str, Any] = {
    "prompt": StringProperty(name="Prompt", description="What the panorama shows", default=""),
    "negative_prompt": StringProperty(name="Negative", description="What it should not show", default=""),
    "model": StringProperty(
        name="Model",
        description="A diffusers LDM3D folder (absolute, or inside the models folder) or a Hugging Face repo id",
        default="Intel/ldm3d-pano",
    ),
    "projection": EnumProperty(
        name="Projection",
        items=PROJECTIONS.items(),
        default=PROJECTIONS.default,
    ),
    "width": IntProperty(
        name="Width",
        description="Pixels, a multiple of 8; 0: 1024 for panoramas, the model's size otherwise",
        default=0,
        min=0,
        soft_max=4096,
        step=64,
    ),
    "height": IntProperty(
        name="Height", description="Pixels, a multiple of 8; 0: half the width for panoramas", default=0, min=0, soft_max=4096, step=64
    ),
    "steps": IntProperty(name="Steps", description="Denoising steps", default=50, soft_min=1, soft_max=200),
    "guidance": FloatProperty(
        name="Guidance", description="How strongly the prompt steers (classifier-free guidance)", default=7.0, soft_min=1.0, soft_max=20.0
    ),
    "seed": IntProperty(name="Seed", description="Same seed and settings give the same result; sample i uses seed + i", default=0, min=0),
    "count": IntProperty(name="Count", description="How many results", default=1, min=1, max=ldm3d.MAX_COUNT),
    "scheduler": EnumProperty(name="Sampler", items=SCHEDULERS.items(), default=SCHEDULERS.default),
    "seamless": BoolProperty(name="Seamless 360°", description="Left and right edges meet without a seam (panoramas)", default=True),
    "init": EnumProperty(
        name="Start From",
        items=[
            ("NONE", "Text Only", "Generate from the prompt alone"),
            ("LAST_CAPTURE", "Last Capture", "img2img from the last captured panorama and its depth"),
            ("FILES", "Files", "img2img from the RGB and depth files below"),
        ],
        default="NONE",
    ),
    "init_rgb_path": StringProperty(name="Init RGB", subtype="FILE_PATH", default=""),
    "init_depth_path": StringProperty(
        name="Init Depth",
        description="Float EXR/.npy distances, or 8/16-bit disparity (near = bright); empty: estimated with the depth estimator",
        subtype="FILE_PATH",
        default="",
    ),
    "depth_estimator": StringProperty(
        name="Depth Estimator",
        description="DPT model (folder or repo id) that estimates the init depth when none is given",
        default=ldm3d.DEFAULT_ESTIMATOR,
    ),
    "strength": FloatProperty(name="Strength", description="img2img: 0 keeps the input, 1 ignores it", default=0.75, min=0.0, max=1.0),
    "build_sphere": BoolProperty(
        name="Build World Sphere", description="Build the displaced world sphere when done (panoramas)", default=True
    ),
    "upscale": IntProperty(
        name="Upscale",
        description="1: as generated; 2 or 4: then LDM3D-sr (2048×1024 or 4096×2048 from a 1024×512 panorama; the base stays in base/)",
        default=1,
        min=1,
        max=4,
    ),
    "upscaler": StringProperty(name="Upscaler", description="LDM3D-sr: a folder or repo id", default=DEFAULT_UPSCALER),
    "vae_tiling": BoolProperty(name="VAE Tiling", description="Decode in tiles: less memory for large images", default=False),
    "attention_slicing": BoolProperty(name="Attention Slicing", description="Less memory, a little slower", default=False),
    "cpu_offload": BoolProperty(
        name="CPU Offload", description="Keep parts of the model on the CPU until used (GPU memory)", default=False
    ),
    "output_dir": StringProperty(
        name="Output Folder", description="Empty: a new folder under the default output folder", subtype="DIR_PATH", default=""
    ),
    "overwrite": BoolProperty(name="Overwrite", description="Replace files already in the output folder", default=False),
}


def _read_image(path: str, what: str) -> np.ndarray:
    """H×W×4 colour pixels of an image file, leaving no new image datablock behind."""
    try:
        image, new = load_image(path)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from None
    try:
        return image_pixels(image)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from None
    finally:
        if new:
            bpy.data.images.remove(image)


class DIFFUSION3D_OT_generate_panorama(EngineJobOperator, bpy.types.Operator):
    """Generate an RGB + depth panorama from text (or img2img from a capture) with LDM3D"""

    bl_idname = "diffusion3d.generate_panorama"
    bl_label = "Generate RGBD Panorama"
    bl_options = {"REGISTER"}
    job_label = "Generating panorama"
    __annotations__ = dict(GENERATE_OPTIONS)

    def _init_images(self, context: bpy.types.Context) -> tuple[np.ndarray | None, str]:
        """The init RGB pixels and the init depth file (the engine reads it; "": estimate it)."""
        if self.init == "NONE":
            return None, ""
        if self.init == "LAST_CAPTURE":
            settings = getattr(context.scene, "diffusion3d", None)
            folder = Path(settings.last_capture) if settings is not None and settings.last_capture else None
            if folder is None or not (folder / "rgb.png").is_file():
                raise UserError("There is no last capture to start from: capture a panorama first, or choose files")
            rgb_path, depth_path = str(folder / "rgb.png"), str(folder / "depth16.png")
        else:
            if not self.init_rgb_path:
                raise UserError("Choose an init RGB file (its depth is optional: without one it is estimated)")
            rgb_path = bpy.path.abspath(self.init_rgb_path)
            depth_path = bpy.path.abspath(self.init_depth_path) if self.init_depth_path else ""
        rgb = _read_image(rgb_path, "Init RGB")
        return rgb[..., :3].copy(), depth_path

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        prefs = session.preferences(context)
        init_rgb, init_depth_path = self._init_images(context)
        out_dir = session.output_folder(self.output_dir, "panorama")
        explicit_seamless = self.properties.is_property_set("seamless")
        request = RGBDRequest(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            model=self.model,
            out_dir=str(out_dir),
            projection=self.projection,
            width=self.width,
            height=self.height,
            steps=self.steps,
            guidance=self.guidance,
            seed=self.seed,
            count=self.count,
            scheduler=self.scheduler,
            seamless=self.seamless if explicit_seamless else None,
            init_rgb=init_rgb,
            init_depth_path=init_depth_path,
            depth_estimator=self.depth_estimator,
            strength=self.strength,
            vae_tiling=self.vae_tiling,
            attention_slicing=self.attention_slicing,
            cpu_offload=self.cpu_offload,
            upscale=self.upscale,
            upscaler=self.upscaler,
            overwrite=self.overwrite,
            access=session.model_access(prefs),
        )
        return "generate_rgbd", request

    def finish(self, context: bpy.types.Context, result: RGBDResult) -> None:
        note = show_panorama(context, result.paths[0], self.build_sphere and self.projection == ldm3d.EQUIRECTANGULAR, "Generated World")
        folder = Path(result.paths[0]["meta.json"]).parent
        where = folder.parent if len(result.paths) > 1 else folder
        upscaled = f" (upscaled {result.upscale}×)" if result.upscale > 1 else ""
        self.report(
            {"WARNING"} if "failed" in note else {"INFO"},
            f"Generated {len(result.paths)} × {result.width}×{result.height} RGBD{upscaled} in {result.seconds:.1f} s into {where}{note}",
        )


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
    job_label = "Finding models"

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        return "list_models", ModelsRequest(access=session.model_access(session.preferences(context)))

    def finish(self, context: bpy.types.Context, result: ModelsResult) -> None:
        found, upscalers = context.window_manager.diffusion3d_models, context.window_manager.diffusion3d_upscalers
        found.clear()
        upscalers.clear()
        for source, label, kind in zip(result.sources, result.labels, result.kinds):
            item = (upscalers if kind == RGBD_SR else found).add()  # each picker offers what it can use
            item.name, item.label, item.kind = source, label, kind
        also = f" and {len(upscalers)} upscaler{'s' if len(upscalers) != 1 else ''}" if len(upscalers) else ""
        self.report({"INFO"}, f"Found {len(found)} LDM3D model{'s' if len(found) != 1 else ''}{also}")


class DIFFUSION3D_OT_random_seed(bpy.types.Operator):
    """Pick a new random seed"""

    bl_idname = "diffusion3d.random_seed"
    bl_label = "Random Seed"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        context.scene.diffusion3d.generate.seed = random.randrange(2**31 - 1)
        return {"FINISHED"}
