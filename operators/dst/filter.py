"""``diffusion3d.filter_dataset``: the K-fold consistency filter on a data set (the engine's ``dst/filter.py``)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty

from ...engine.choices import KCF_BACKBONES
from ...engine.dst.filter import KCFRequest, KCFResult
from ...engine.jobs import request_defaults
from ..machinery import session
from ..machinery.job import EngineJobOperator
from .dataset import DATASET, SHARD, dataset_path

DEFAULT = request_defaults(KCFRequest)
FILTER_OPTIONS: dict[str, Any] = {
    "dataset_dir": DATASET,
    "fraction": FloatProperty(
        name="Drop",
        description="The worst fraction of generated images to move to rejected/",
        default=DEFAULT["fraction"],
        min=0.0,
        max=1.0,
        subtype="FACTOR",
    ),
    "folds": IntProperty(name="Folds", default=DEFAULT["folds"], min=2, max=100),
    "seed": IntProperty(name="Seed", default=0, min=0),
    "backbone": EnumProperty(name="Backbone", items=KCF_BACKBONES.items(), default=KCF_BACKBONES.default),
    "epochs": IntProperty(name="Epochs", description="3D-DST: 150", default=DEFAULT["epochs"], min=1),
    "image_size": IntProperty(name="Image Size", description="3D-DST: 256", default=DEFAULT["image_size"], min=8),
    "shard": SHARD,
}


class DIFFUSION3D_OT_filter_dataset(EngineJobOperator, bpy.types.Operator):
    """K-fold consistency filter: score every generated image's pose, move the worst to rejected/"""

    bl_idname = "diffusion3d.filter_dataset"
    bl_label = "Filter Data Set"
    bl_options = {"REGISTER"}
    job_label = "Filtering (K-fold consistency)"
    __annotations__ = {
        **FILTER_OPTIONS,
        "scores_dir": StringProperty(
            name="Scores Into",
            description="With a shard: write its scores here instead of the data set's kcf/",
            subtype="DIR_PATH",
            options={"SKIP_SAVE"},
        ),
    }

    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        request = KCFRequest(
            dataset_dir=dataset_path(self.dataset_dir),
            fraction=self.fraction,
            folds=self.folds,
            seed=self.seed,
            backbone=self.backbone,
            epochs=self.epochs,
            image_size=self.image_size,
            access=session.model_access(session.preferences(context)),
            shard=self.shard,
            scores_dir=bpy.path.abspath(self.scores_dir) if self.scores_dir else "",
        )
        return "filter_dataset", request

    def finish(self, context: bpy.types.Context, result: KCFResult) -> None:
        if not result.complete:
            self.report(
                {"INFO"},
                f"Shard {self.shard}: {result.scored} images scored into {result.scores_path}; run without a shard once all are done",
            )
            return
        self.report({"INFO"}, f"Scored {result.scored} images; moved {len(result.rejected)} to rejected/ (scores in {result.scores_path})")
