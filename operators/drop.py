"""``diffusion3d.drop_panorama``: a panorama dropped onto the 3D viewport becomes a world sphere.

Blender (4.1+) hands the dropped files to the operator a :class:`DIFFUSION3D_FH_panorama` file handler names;
the engine pairs them (``engine/world/rgbd.py``: :func:`paired_panorama`) and the world sphere operator builds,
as if its button had been pressed with those two files: its progress, its errors and its one undo step.
"""

from pathlib import Path
from typing import Any

import bpy
from bpy.props import BoolProperty, CollectionProperty, StringProperty

from ..engine.errors import BadInput, last_line
from ..engine.world.rgbd import paired_panorama
from .machinery import job
from .machinery.job import PolledOperator


class DIFFUSION3D_OT_drop_panorama(PolledOperator, bpy.types.Operator):
    """Build a world sphere from a dropped panorama: two files are the RGB and its depth (the one named …depth, else the
    EXR/HDR file); one file is the RGB, its depth found beside it (rgb.*: depth.*, an EXR first, or depth16.png;
    NAME_rgb.*: NAME_depth.*; NAME.*: NAME_depth.*)"""

    bl_idname = "diffusion3d.drop_panorama"
    bl_label = "Drop Panorama"
    bl_options = {"REGISTER"}  # the world sphere operator it calls makes the one undo step
    __annotations__ = {
        "directory": StringProperty(subtype="DIR_PATH", options={"SKIP_SAVE", "HIDDEN"}, description="The folder of the dropped files"),
        "files": CollectionProperty(
            type=bpy.types.OperatorFileListElement, options={"SKIP_SAVE", "HIDDEN"}, description="The dropped files' names"
        ),
        "filepath": StringProperty(subtype="FILE_PATH", options={"SKIP_SAVE", "HIDDEN"}, description="The dropped file (just one)"),
        "filter_image": BoolProperty(default=True, options={"SKIP_SAVE", "HIDDEN"}, description="The file browser shows images only"),
        "filter_folder": BoolProperty(default=True, options={"SKIP_SAVE", "HIDDEN"}, description="The file browser shows folders"),
    }

    def _paths(self) -> list[str]:
        if self.directory and len(self.files) and self.files[0].name:
            return [str(Path(self.directory) / f.name) for f in self.files]
        return [self.filepath] if self.filepath else []

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        if not self._paths():  # called from a menu or search: choose the files
            context.window_manager.fileselect_add(self)
            return {"RUNNING_MODAL"}
        return self._build(context, "INVOKE_DEFAULT")

    def execute(self, context: bpy.types.Context) -> set[str]:
        return self._build(context, "EXEC_DEFAULT")

    def _build(self, context: bpy.types.Context, how: str) -> set[str]:
        if self.refused(context):
            return {"CANCELLED"}
        try:
            rgb, depth = paired_panorama(self._paths())
            done = bpy.ops.diffusion3d.build_world_sphere(how, rgb_path=rgb, depth_path=depth)
        except (BadInput, RuntimeError) as exc:  # the world sphere's own report, which a nested call does not show
            self.report({"ERROR"}, last_line(exc))
            return {"CANCELLED"}
        if "FINISHED" in done:  # type: ignore[operator]  # bpy.ops returns a set
            built = job.current.summary.get("object", "the world sphere")
            self.report({"INFO"}, f"{built}: built from {Path(rgb).name} and {Path(depth).name}")
        return {"FINISHED"}  # or the world sphere's modal build goes on, reporting when it ends


class DIFFUSION3D_FH_panorama(bpy.types.FileHandler):
    """Panoramas dropped onto the 3D viewport: :class:`DIFFUSION3D_OT_drop_panorama`."""

    bl_idname = "DIFFUSION3D_FH_panorama"
    bl_label = "Diffusion 3D world sphere"
    bl_import_operator = DIFFUSION3D_OT_drop_panorama.bl_idname
    bl_file_extensions = ".png;.jpg;.jpeg;.exr;.hdr;.tif;.tiff;.webp"

    @classmethod
    def poll_drop(cls, context: bpy.types.Context) -> bool:
        area = getattr(context, "area", None)
        return area is not None and area.type == "VIEW_3D"
