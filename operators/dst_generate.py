"""``diffusion3d.generate_from_edges`` and ``diffusion3d.filter_dataset``: the engine's 3D-DST jobs on a data set folder.

Both only read Blender's settings and hand the folder to the engine: the
images, their annotations and the filter's moves all happen there.
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ..engine.dst.filter import KCFRequest, KCFResult
from ..engine.dst.generate import SD15, SD15_CANNY, EdgeGenerationRequest, EdgeGenerationResult
from . import session
from .engine_job import EngineJobOperator, UserError

DATASET = StringProperty(name="Dataset", description="A data set folder made by Render Edge Maps", subtype="DIR_PATH", default="")
SHARD = StringProperty(name="Shard", description="'I/N': only this machine's share (1-based I)", default="")

GENERATE_EDGES_OPTIONS: dict[str, Any] = {
    "dataset_dir": DATASET,
    "base_model": StringProperty(name="Base Model", description="Stable Diffusion 1.5 (or SDXL) folder or repo id", default=SD15),
    "controlnet": StringProperty(name="ControlNet", description="Canny ControlNet for that base: folder or repo id", default=SD15_CANNY),
    "vae": StringProperty(name="VAE", description="Another VAE (e.g. SDXL's fp16 fix); empty: the base's", default=""),
    "images_per_view": IntProperty(name="Images per View", default=1, min=1, max=999),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "steps": IntProperty(name="Steps", description="DDIM steps (3D-DST: 20)", default=20, min=1, soft_max=100),
    "guidance": FloatProperty(name="Guidance", description="3D-DST: 9.0", default=9.0, min=0.0, soft_max=20.0),
    "control_strength": FloatProperty(name="Control Strength", description="3D-DST: 1.0", default=1.0, min=0.0, max=2.0),
    "style": StringProperty(name="Style", description="Comma-separated words added to every prompt", default=""),
    "prompt_model": StringProperty(
        name="Prompt Model", description="A local text-generation model folder that varies the prompts; empty: a template from the tags", subtype="DIR_PATH", default=""
    ),
    "shard": SHARD,
    "overwrite": BoolProperty(name="Overwrite", default=False),
}

FILTER_OPTIONS: dict[str, Any] = {
    "dataset_dir": DATASET,
    "fraction": FloatProperty(name="Drop", description="The worst fraction of generated images to move to rejected/", default=0.1, min=0.0, max=1.0, subtype="FACTOR"),
    "folds": IntProperty(name="Folds", default=5, min=2, max=100),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "backbone": EnumProperty(
        name="Backbone",
        items=[("auto", "Auto", "ResNet-50 on a GPU with torchvision, else a small CNN"), ("resnet50", "ResNet-50", "As 3D-DST (needs torchvision)"), ("small", "Small CNN", "Fast, CPU-friendly")],
        default="auto",
    ),
    "epochs": IntProperty(name="Epochs", description="3D-DST: 150", default=150, min=1),
    "image_size": IntProperty(name="Image Size", description="3D-DST: 256", default=256, min=8),
    "shard": SHARD,
}


def _dataset(path: str) -> str:
    if not path:
        raise UserError("Choose the data set folder (made by Render Edge Maps)")
    return bpy.path.abspath(path)


class DIFFUSION3D_OT_generate_from_edges(EngineJobOperator, bpy.types.Operator):
    """Generate ControlNet images from a data set's edge maps; each shares its view's 3D annotation"""

    bl_idname = "diffusion3d.generate_from_edges"
    bl_label = "Generate from Edges"
    bl_options = {"REGISTER"}
    job_label = "Generating from edge maps"
    __annotations__ = dict(GENERATE_EDGES_OPTIONS)

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        access = session.model_access(session.preferences(context))
        request = EdgeGenerationRequest(
            dataset_dir=_dataset(self.dataset_dir),
            base_model=self.base_model,
            controlnet=self.controlnet,
            vae=self.vae,
            images_per_view=self.images_per_view,
            seed=self.seed,
            steps=self.steps,
            guidance=self.guidance,
            control_strength=self.control_strength,
            style=self.style,
            prompt_model=bpy.path.abspath(self.prompt_model) if self.prompt_model else "",
            shard=self.shard,
            overwrite=self.overwrite,
            **access,
        )
        return "generate_from_edges", request

    def finish(self, context: bpy.types.Context, result: EdgeGenerationResult) -> None:
        self.report({"INFO"}, f"{result.images} images from {result.views} edge maps in {result.seconds:.1f} s, linked in {result.dataset_dir}/annotations.json")


class DIFFUSION3D_OT_filter_dataset(EngineJobOperator, bpy.types.Operator):
    """K-fold consistency filter: score every generated image's pose, move the worst to rejected/"""

    bl_idname = "diffusion3d.filter_dataset"
    bl_label = "Filter Data Set"
    bl_options = {"REGISTER"}
    job_label = "Filtering (K-fold consistency)"
    __annotations__ = dict(FILTER_OPTIONS)

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        access = session.model_access(session.preferences(context))
        request = KCFRequest(
            dataset_dir=_dataset(self.dataset_dir),
            fraction=self.fraction,
            folds=self.folds,
            seed=self.seed,
            backbone=self.backbone,
            epochs=self.epochs,
            image_size=self.image_size,
            device=access["device"],
            allow_pickle=access["allow_pickle"],
            shard=self.shard,
        )
        return "filter_dataset", request

    def finish(self, context: bpy.types.Context, result: KCFResult) -> None:
        if not result.complete:
            self.report({"INFO"}, f"Shard {self.shard}: {result.scored} images scored into {result.scores_path}; run without a shard once all are done")
            return
        self.report({"INFO"}, f"Scored {result.scored} images; moved {len(result.rejected)} to rejected/ (scores in {result.scores_path})")
