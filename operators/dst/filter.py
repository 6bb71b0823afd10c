"""``diffusion3d.filter_dataset``: the K-fold consistency filter on a data set (the engine's ``dst/filter.py``)."""

from __future__ import annotations

from typing import Any

import bpy

from ...engine.dst.filter import KCFRequest, KCFResult
from ..machinery import declared
from ..machinery.job import EngineJobOperator


class DIFFUSION3D_OT_filter_dataset(EngineJobOperator, bpy.types.Operator):
    """K-fold consistency filter: score every generated image's pose, move the worst to rejected/"""

    bl_idname = "diffusion3d.filter_dataset"
    bl_label = "Filter Data Set"
    bl_options = {"REGISTER"}
    job = "filter_dataset"
    job_label = "Filtering (K-fold consistency)"
    __annotations__ = declared.properties(KCFRequest)

    def finish(self, context: bpy.types.Context, result: KCFResult) -> dict[str, Any]:
        if not result.complete:
            self.report(
                {"INFO"},
                f"Shard {self.shard}: {result.scored} images scored into {result.scores_path}; run without a shard once all are done",
            )
        else:
            self.report(
                {"INFO"}, f"Scored {result.scored} images; moved {len(result.rejected)} to rejected/ (scores in {result.scores_path})"
            )
        return result.summary()
