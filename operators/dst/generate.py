"""``diffusion3d.generate_from_edges``: a data set's edge maps → ControlNet images (the engine's ``dst/generate.py``).

The operator only reads Blender's settings and hands the folder to the engine:
the images and their annotations are made there.
"""

from __future__ import annotations

from typing import Any

import bpy

from ...engine.dst.generate import EdgeGenerationRequest, EdgeGenerationResult
from ..machinery import declared
from ..machinery.job import EngineJobOperator


class DIFFUSION3D_OT_generate_from_edges(EngineJobOperator, bpy.types.Operator):
    """Generate ControlNet images from a data set's edge maps; each shares its view's 3D annotation"""

    bl_idname = "diffusion3d.generate_from_edges"
    bl_label = "Generate from Edges"
    bl_options = {"REGISTER"}
    job = "generate_from_edges"
    job_label = "Generating from edge maps"
    __annotations__ = declared.properties(EdgeGenerationRequest)

    def finish(self, context: bpy.types.Context, result: EdgeGenerationResult) -> dict[str, Any]:
        self.report(
            {"INFO"},
            f"{result.images} images from {result.views} edge maps in {result.seconds:.1f} s, linked in {result.dataset_dir}/annotations.json",
        )
        return result.summary()
