"""Add-on preferences: where the engine runs, where models live, what it may do."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from ..engine.choices import DEVICES, PRECISIONS
from ..operators.engine_ops import last_check
from ..operators.machinery import session


class Diffusion3DPreferences(bpy.types.AddonPreferences):
    bl_idname = session.ADDON

    engine_mode: EnumProperty(  # type: ignore[valid-type]
        name="Engine",
        items=[
            (
                "IN_PROCESS",
                "In Blender",
                "Run jobs on a thread in Blender's own Python (no set-up; no torch unless you installed it there)",
            ),
            ("SUBPROCESS", "Separate Python", "Run jobs in a worker process started with the Python below (recommended for models)"),
        ],
        default="IN_PROCESS",
    )
    python_path: StringProperty(  # type: ignore[valid-type]
        name="Python",
        description="Interpreter with torch and diffusers for the worker; empty: Blender's own Python",
        subtype="FILE_PATH",
        default="",
    )
    models_dir: StringProperty(name="Models Folder", description="Local diffusers model folders", subtype="DIR_PATH", default="")  # type: ignore[valid-type]
    hf_cache_dir: StringProperty(  # type: ignore[valid-type]
        name="Hugging Face Cache", description="HF_HOME for the engine; empty: the usual default", subtype="DIR_PATH", default=""
    )
    allow_downloads: BoolProperty(  # type: ignore[valid-type]
        name="Allow Downloads",
        description="Let the engine download models (only while Blender's online access is also on)",
        default=False,
    )
    allow_pickle: BoolProperty(  # type: ignore[valid-type]
        name="Allow Pickled Weights",
        description="Also load .bin/.ckpt weights, which can run code when loaded; only for models you trust",
        default=False,
    )
    device: EnumProperty(name="Device", items=DEVICES.items(), default=DEVICES.default)  # type: ignore[valid-type]
    precision: EnumProperty(name="Precision", items=PRECISIONS.items(), default=PRECISIONS.default)  # type: ignore[valid-type]
    output_dir: StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Default folder for results; empty: next to the saved .blend, else the extension's user folder",
        subtype="DIR_PATH",
        default="",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        col = layout.column(heading="Engine")
        col.prop(self, "engine_mode")
        sub = col.column()
        sub.active = self.engine_mode == "SUBPROCESS"
        sub.prop(self, "python_path")
        row = col.row(align=True)
        row.operator("diffusion3d.setup_engine", icon="IMPORT")
        repair = row.operator("diffusion3d.setup_engine", text="Repair", icon="TOOL_SETTINGS")
        repair.upgrade = True
        row.operator("diffusion3d.setup_engine", text="Remove", icon="TRASH").remove = True
        row = col.row(align=True)
        row.operator("diffusion3d.check_engine", icon="CHECKMARK")
        row.operator("diffusion3d.release_engine", icon="X")
        if not bpy.app.online_access:
            col.label(text="Set Up Engine downloads packages: Blender's online access is off", icon="ERROR")
        if last_check.text:
            col.label(text=last_check.text, icon="INFO")
        if last_check.problems:
            col.label(text=last_check.problems, icon="ERROR")
        col = layout.column(heading="Models")
        col.prop(self, "models_dir")
        col.prop(self, "hf_cache_dir")
        col.prop(self, "allow_downloads")
        if self.allow_downloads and not bpy.app.online_access:
            col.label(text="Blender's online access is off: nothing will be downloaded", icon="ERROR")
        col.prop(self, "allow_pickle")
        col = layout.column(heading="Compute")
        col.prop(self, "device")
        col.prop(self, "precision")
        layout.prop(self, "output_dir")
