"""``diffusion3d.generate_from_edges``: a data set's edge maps → ControlNet images (the engine's ``dst/generate.py``).

The operator only reads Blender's settings and hands the folder to the engine:
the images and their annotations are made there.
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, IntProperty, StringProperty

from ...engine.dst.generate import EdgeGenerationRequest, EdgeGenerationResult
from ...engine.jobs import request_defaults
from ..machinery import session
from ..machinery.job import EngineJobOperator
from .dataset import DATASET, SHARD, dataset_path

DEFAULT = request_defaults(EdgeGenerationRequest)
GENERATE_EDGES_OPTIONS: dict[str, Any] = {
    "dataset_dir": DATASET,
    "base_model": StringProperty(
        name="Base Model", description="Stable Diffusion 1.5 (or SDXL) folder or repo id", default=DEFAULT["base_model"]
    ),
    "controlnet": StringProperty(
        name="ControlNet", description="Canny ControlNet for that base: folder or repo id", default=DEFAULT["controlnet"]
    ),
    "vae": StringProperty(name="VAE", description="Another VAE (e.g. SDXL's fp16 fix); empty: the base's", default=""),
    "images_per_view": IntProperty(name="Images per View", default=DEFAULT["images_per_view"], min=1, max=999),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "steps": IntProperty(name="Steps", description="DDIM steps (3D-DST: 20)", default=DEFAULT["steps"], min=1, soft_max=100),
    "guidance": FloatProperty(name="Guidance", description="3D-DST: 9.0", default=DEFAULT["guidance"], min=0.0, soft_max=20.0),
    "control_strength": FloatProperty(
        name="Control Strength", description="3D-DST: 1.0", default=DEFAULT["control_strength"], min=0.0, max=2.0
    ),
    "style": StringProperty(name="Style", description="Comma-separated words added to every prompt", default=""),
    "prompt_model": StringProperty(
        name="Prompt Model",
        description="A local text-generation model folder that varies the prompts; empty: a template from the tags",
        subtype="DIR_PATH",
        default="",
    ),
    "shard": SHARD,
    "overwrite": BoolProperty(name="Overwrite", default=False),
}


class DIFFUSION3D_OT_generate_from_edges(EngineJobOperator, bpy.types.Operator):
    """Generate ControlNet images from a data set's edge maps; each shares its view's 3D annotation"""

    bl_idname = "diffusion3d.generate_from_edges"
    bl_label = "Generate from Edges"
    bl_options = {"REGISTER"}
    job_label = "Generating from edge maps"
    __annotations__ = {
        **GENERATE_EDGES_OPTIONS,
        "out_dir": StringProperty(
            name="Into",
            description="Write the images here instead of the data set's generated/ (a shard's share, joined later)",
            subtype="DIR_PATH",
            options={"SKIP_SAVE"},
        ),
    }

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        request = EdgeGenerationRequest(
            dataset_dir=dataset_path(self.dataset_dir),
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
            out_dir=bpy.path.abspath(self.out_dir) if self.out_dir else "",
            overwrite=self.overwrite,
            access=session.model_access(session.preferences(context)),
        )
        return "generate_from_edges", request

    def finish(self, context: bpy.types.Context, result: EdgeGenerationResult) -> None:
        self.report(
            {"INFO"},
            f"{result.images} images from {result.views} edge maps in {result.seconds:.1f} s, linked in {result.dataset_dir}/annotations.json",
        )
