"""Presets per job, through Blender's own preset system: a few shipped with the add-on, the user's own saved beside Blender's.

Each job in :data:`JOBS` gets a preset button (a :class:`PresetPanel` popover, drawn in a sidebar panel's header by
:func:`preset_header`) and an ``AddPresetBase`` operator that saves or removes the user's presets of it. What a preset
holds comes from the job's declaration (:func:`in_preset`): how the job runs — its numbers, switches and choices as the panel
shows them — never what it runs on or the user's own words: no text (paths, prompts, model folders or ids, names of
Blender data) and nothing the operator takes from the scene (where to capture from, which source, which objects).

Shipped presets (``shipped_presets/<key>/NAME.py``) are written as ``AddPresetBase`` writes a preset, but each sets only
what it is about (a draft's steps and size, a video's projection and resolution), leaving the rest as the user set it.
Blender lists only its own preset folders (``bpy.utils.preset_paths``), so the popover lists the shipped folder (no
remove buttons: they cannot be removed, nor shadowed by a user preset of the same name) and then the user's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import bpy
from bl_operators.presets import AddPresetBase
from bl_ui.utils import PresetPanel
from bpy.props import BoolProperty

from ..engine.dst.dataset import DSTAnnotateRequest
from ..engine.dst.filter import KCFRequest
from ..engine.dst.generate import EdgeGenerationRequest
from ..engine.multiview.job import ViewsRequest
from ..engine.params import Leaf
from ..engine.viewneti.posed import PosedSetRequest
from ..engine.viewneti.render import RenderViewRequest
from ..engine.viewneti.single_image import ImageViewsRequest
from ..engine.viewneti.train import TrainRequest
from ..engine.world.capture import CaptureRequest
from ..engine.world.export import ExportRequest
from ..engine.world.ldm3d import RGBDRequest
from ..engine.world.stereo_rig import MoveRequest, RigRequest
from ..engine.world.stereo_video import VideoRequest
from ..engine.world.upscale import UpscaleRequest
from ..engine.world.world_sphere import WorldSphereRequest
from ..operators.machinery.declared import blender_leaves
from ..operators.machinery.job import ExplainedPoll
from .settings import GEN, KCF, NVS, TRAIN

SHIPPED = Path(__file__).parent / "shipped_presets"


def in_preset(leaf: Leaf) -> bool:
    """Whether a preset holds this declared parameter: a number, switch or choice the panel shows, not one read from the scene."""
    p = leaf.param
    return p.ui and not p.blender and not p.path and (leaf.kind is not str or p.choices is not None)


@dataclass(frozen=True)
class PresetJob:
    """A job whose panel settings have presets: ``settings`` (from ``bpy.context``) holds them, each named ``prefix`` + property."""

    key: str  # the preset folder's name (``diffusion3d/<key>``) and the classes' suffix
    label: str
    settings: str
    request: type
    prefix: str = ""

    @property
    def subdir(self) -> str:
        return f"diffusion3d/{self.key}"

    @property
    def shipped(self) -> Path:
        return SHIPPED / self.key

    @property
    def panel(self) -> str:
        return f"DIFFUSION3D_PT_presets_{self.key}"

    @property
    def add_operator(self) -> str:
        return f"diffusion3d.add_preset_{self.key}"

    def properties(self) -> list[str]:
        """The settings' property names a preset of this job holds."""
        return [self.prefix + leaf.prop for leaf in blender_leaves(self.request) if in_preset(leaf)]

    def user_folder(self, create: bool = False) -> str:
        """Where Blender keeps the user's presets of this job (``""`` if it cannot be made)."""
        return bpy.utils.user_resource("SCRIPTS", path=os.path.join("presets", self.subdir), create=create)


_SCENE = "scene.diffusion3d"
JOBS: tuple[PresetJob, ...] = (
    PresetJob("capture", "Capture", _SCENE, CaptureRequest),
    PresetJob("generate", "Generate", f"{_SCENE}.generate", RGBDRequest),
    PresetJob("upscale", "Upscale", f"{_SCENE}.upscale", UpscaleRequest),
    PresetJob("world_sphere", "World Sphere", _SCENE, WorldSphereRequest),
    PresetJob("export", "Export", f"{_SCENE}.export", ExportRequest),
    PresetJob("stereo_rig", "Stereo Rig", f"{_SCENE}.stereo", RigRequest),
    PresetJob("camera_move", "Camera Move", f"{_SCENE}.stereo", MoveRequest),
    PresetJob("stereo_video", "Stereo Video", f"{_SCENE}.stereo", VideoRequest),
    PresetJob("dst_views", "3D-DST Views", f"{_SCENE}.dst", DSTAnnotateRequest),
    PresetJob("dst_images", "3D-DST Images", f"{_SCENE}.dst", EdgeGenerationRequest, GEN),
    PresetJob("dst_filter", "3D-DST Filter", f"{_SCENE}.dst", KCFRequest, KCF),
    PresetJob("views", "Object Views", f"{_SCENE}.views", ViewsRequest),
    PresetJob("viewneti_views", "ViewNeTI Training Views", f"{_SCENE}.viewneti", PosedSetRequest),
    PresetJob("viewneti_train", "ViewNeTI Training", f"{_SCENE}.viewneti", TrainRequest, TRAIN),
    PresetJob("viewneti_generate", "ViewNeTI Generation", f"{_SCENE}.viewneti", RenderViewRequest, GEN),
    PresetJob("viewneti_image", "ViewNeTI Views From an Image", f"{_SCENE}.viewneti", ImageViewsRequest, NVS),
)


def _display_name(path: str) -> str:
    return bpy.path.display_name(path, title_case=False)


class JobPresetPanel(PresetPanel):
    """The preset popover of :attr:`job`: the shipped presets, then the user's with their remove buttons and the add row."""

    job: ClassVar[PresetJob]
    bl_space_type = "VIEW_3D"
    bl_region_type = "HEADER"
    preset_operator = "script.execute_preset"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.emboss = "PULLDOWN_MENU"
        layout.operator_context = "EXEC_DEFAULT"
        listed = {"filter_ext": lambda ext: ext.lower() == ".py", "display_name": _display_name}
        if self.job.shipped.is_dir():
            self.path_menu([str(self.job.shipped)], self.preset_operator, **listed)
            layout.separator()
        user = self.job.user_folder(create=True)  # as saving one would: the add row lists the folder it saves into
        self.path_menu([user] if user else [], self.preset_operator, add_operator=self.job.add_operator, **listed)


class AddJobPreset(ExplainedPoll, AddPresetBase):
    """Saves the job's settings as a user preset, or removes one (``remove_name``); a shipped preset's name is taken.

    Each subclass has its ``job`` (a :class:`PresetJob`), not annotated here: an operator's annotations are Blender's to
    read, and this one left bpy's process hanging at exit."""

    remove_name: BoolProperty(
        default=False, description="Remove the user preset of this name instead of adding one", options={"HIDDEN", "SKIP_SAVE"}
    )
    remove_active: BoolProperty(
        default=False, description="Remove the preset last loaded instead of adding one", options={"HIDDEN", "SKIP_SAVE"}
    )

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return "" if getattr(context.scene, "diffusion3d", None) is not None else "No scene here to keep presets of"

    def execute(self, context: bpy.types.Context) -> Any:
        adding = not (self.remove_name or self.remove_active)
        if adding and (self.job.shipped / f"{self.as_filename(self.name)}.py").is_file():
            self.report({"WARNING"}, f'Cannot create preset "{self.name.strip()}": a shipped preset has that name')
            return {"CANCELLED"}
        return super().execute(context)


def _classes(job: PresetJob) -> tuple[type, type]:
    panel_cls = type(job.panel, (JobPresetPanel, bpy.types.Panel), {"bl_idname": job.panel, "bl_label": "Presets", "job": job})
    operator = {
        "__doc__": f"Add or remove a {job.label} preset",
        "bl_idname": job.add_operator,
        "bl_label": f"Add {job.label} Preset",
        "job": job,
        "preset_menu": job.panel,
        "preset_subdir": job.subdir,
        "preset_defines": [f"settings = bpy.context.{job.settings}"],
        "preset_values": [f"settings.{name}" for name in job.properties()],
    }
    operator_cls = type(f"DIFFUSION3D_OT_add_preset_{job.key}", (AddJobPreset, bpy.types.Operator), operator)
    return panel_cls, operator_cls


classes: tuple[type, ...] = tuple(cls for job in JOBS for cls in _classes(job))


def preset_header(layout: bpy.types.UILayout, key: str) -> None:
    """The preset button of the job ``key`` (a :data:`JOBS` key), for a panel's ``draw_header_preset``."""
    panel = next(cls for cls in classes if issubclass(cls, JobPresetPanel) and cls.job.key == key)
    panel.draw_panel_header(layout)
