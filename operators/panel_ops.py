"""Small operators the panels' buttons call: a model folder from the file browser, the last result's folder opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy
from bpy.props import StringProperty

from .machinery.job import ExplainedPoll
from .machinery.last_result import last


class DIFFUSION3D_OT_choose_model_folder(ExplainedPoll, bpy.types.Operator):
    """Choose a model's folder in the file browser (a model field also takes a Hugging Face repo id)"""

    bl_idname = "diffusion3d.choose_model_folder"
    bl_label = "Choose Model Folder"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Folder", description="The model's folder", subtype="DIR_PATH")  # type: ignore[valid-type]
    setting: StringProperty(  # type: ignore[valid-type]
        name="Setting", description="The model field to fill: its data path from the scene (diffusion3d.generate.model)", options={"HIDDEN"}
    )

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return "" if getattr(context.scene, "diffusion3d", None) is not None else "No scene here to choose a model for"

    def _owner(self, context: bpy.types.Context) -> tuple[Any, str] | None:
        path, _, name = self.setting.rpartition(".")
        if not path.startswith("diffusion3d"):  # only the add-on's own settings
            return None
        try:
            owner = context.scene.path_resolve(path)
        except ValueError:
            return None
        return (owner, name) if name in owner.bl_rna.properties.keys() else None

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if self._owner(context) is None:
            self.report({"ERROR"}, f"No model setting {self.setting!r}")
            return {"CANCELLED"}
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        found = self._owner(context)
        if found is None:
            self.report({"ERROR"}, f"No model setting {self.setting!r}")
            return {"CANCELLED"}
        folder = Path(bpy.path.abspath(self.directory))
        if not folder.is_dir():
            self.report({"ERROR"}, f"No folder {str(folder)!r}")
            return {"CANCELLED"}
        owner, name = found
        setattr(owner, name, str(folder))
        return {"FINISHED"}


def open_folder(folder: str) -> None:
    """Blender's own "open in the system's file browser" (the tests replace it: a window manager may not be there)."""
    bpy.ops.wm.path_open(filepath=folder)


class DIFFUSION3D_OT_open_output_folder(ExplainedPoll, bpy.types.Operator):
    """Open the last result's folder in the system's file browser"""

    bl_idname = "diffusion3d.open_output_folder"
    bl_label = "Open Output Folder"

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        if not last.folder:
            return "No result yet: run a job first"
        return "" if Path(last.folder).is_dir() else f"The last result's folder is gone: {last.folder}"

    def execute(self, context: bpy.types.Context) -> set[str]:
        open_folder(last.folder)
        return {"FINISHED"}


classes = (DIFFUSION3D_OT_choose_model_folder, DIFFUSION3D_OT_open_output_folder)
