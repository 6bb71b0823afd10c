"""Engine housekeeping: check what the engine's Python has, release it, cancel a job."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bpy

from ..engine.errors import BadInput
from ..engine.info import InfoRequest, InfoResult
from ..engine.install import torch_choice
from ..engine.install.setup import EngineSetupRequest, EngineSetupResult, torch_version
from .machinery import declared, session
from .machinery.job import EngineJobOperator, ExplainedPoll, UserError, ask_first, current


@dataclass
class EngineCheck:
    """The last "Check engine" summary, shown in the Engine panel and the preferences."""

    text: str = ""
    problems: str = ""


last_check = EngineCheck()


class DIFFUSION3D_OT_check_engine(EngineJobOperator, bpy.types.Operator):
    """Start the engine and report its Python, torch, diffusers and devices"""

    bl_idname = "diffusion3d.check_engine"
    bl_label = "Check Engine"
    job = "engine_info"
    job_label = "Checking engine"

    def read(self, context: bpy.types.Context, request: InfoRequest) -> InfoRequest:
        return InfoRequest(import_torch=True)

    def finish(self, context: bpy.types.Context, result: InfoResult) -> None:
        last_check.text, last_check.problems = result.summary(), "; ".join(result.problems)
        self.report(
            {"WARNING"} if result.problems else {"INFO"}, result.summary() + (f" ({last_check.problems})" if result.problems else "")
        )

    def discard(self, context: bpy.types.Context) -> None:
        last_check.text, last_check.problems = "", ""


class DIFFUSION3D_OT_release_engine(ExplainedPoll, bpy.types.Operator):
    """Stop the engine worker and free the memory its models hold"""

    bl_idname = "diffusion3d.release_engine"
    bl_label = "Release Engine"

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return "" if session.started() else "The engine is not started: nothing to release"

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Ask first when it would cancel a running job (a script's call runs ``execute`` directly, without asking)."""
        if current.running() is None:
            return self.execute(context)
        return ask_first(
            self,
            context,
            event,
            "Release the engine?",
            f"{current.label} is running: releasing the engine cancels it",
            "Release and Cancel",
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        handle = current.running()
        if handle is not None:
            handle.cancel()
        session.release()
        self.report({"INFO"}, "Engine released")
        return {"FINISHED"}


class DIFFUSION3D_OT_cancel_job(ExplainedPoll, bpy.types.Operator):
    """Cancel the running Diffusion 3D job"""

    bl_idname = "diffusion3d.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return "" if current.busy() else "No Diffusion 3D job is running"

    def execute(self, context: bpy.types.Context) -> set[str]:
        current.request_cancel()
        return {"FINISHED"}


def _inside(prefs: Any, folder: str) -> bool:
    """Whether the preferences' engine Python lives in ``folder``."""
    return bool(prefs is not None and prefs.python_path and Path(bpy.path.abspath(prefs.python_path)).is_relative_to(Path(folder)))


class DIFFUSION3D_OT_setup_engine(EngineJobOperator, bpy.types.Operator):
    """Make a Python of the add-on's own with the torch build for this machine and the engine's packages, check it,
    and use it for model jobs (Preferences: Engine: Separate Python)"""

    bl_idname = "diffusion3d.setup_engine"
    bl_label = "Set Up Engine"
    job = "engine_setup"
    job_label = "Setting up the engine"
    in_blender = True
    __annotations__ = declared.properties(EngineSetupRequest)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Clicked: the build, why, and the download size first; the install (with progress and Esc) once confirmed."""
        if self.plan_only or bpy.app.background or context.window is None:
            return super().invoke(context, event)
        folder = self.folder or str(session.engine_folder())
        if self.remove:
            return ask_first(self, context, event, "Remove Engine", f"Delete the engine in {folder}?", "Remove")
        try:
            choice = torch_choice.choose(torch_choice.detect(), self.torch, torch_version())
        except BadInput as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        message = (
            f"{choice.requirement} ({choice.reason}) and the engine's packages into {folder}: about {choice.download_mb:,} MB to download"
        )
        return ask_first(self, context, event, "Set Up Engine", message, "Install", icon="QUESTION")

    def execute(self, context: bpy.types.Context) -> set[str]:
        if self.plan_only or bpy.app.background or context.window is None:
            return super().execute(context)
        return super().invoke(context, None)  # confirmed in a window: the install runs modal, with progress and Esc

    def read(self, context: bpy.types.Context, request: EngineSetupRequest) -> EngineSetupRequest:
        if not bpy.app.online_access and not (request.plan_only or request.remove):
            raise UserError("Setting up the engine downloads packages: turn on Blender's online access (Preferences → System → Network)")
        folder = request.folder or str(session.engine_folder())
        if request.remove and _inside(session.preferences(context), folder):
            session.release()  # its worker stops before its files go
        return dataclasses.replace(request, folder=folder, online=bool(bpy.app.online_access))

    def finish(self, context: bpy.types.Context, result: EngineSetupResult) -> dict[str, object]:
        prefs = session.preferences(context)
        if self.remove:
            if result.removed and _inside(prefs, result.folder):  # the engine in use gone: back to Blender's own Python
                prefs.engine_mode, prefs.python_path = "IN_PROCESS", ""
            gone = f"Removed the engine in {result.folder} ({result.size_mb:,} MB)" if result.removed else f"No engine in {result.folder}"
            self.report({"INFO"}, gone)
            return result.summary()
        if result.ready:  # only a checked engine is selected: the previous one stays until then
            if prefs is not None:
                prefs.engine_mode, prefs.python_path = "SUBPROCESS", result.python
            last_check.text, last_check.problems = result.check, ""
            done = "Installed" if result.installed else "Already set up"
            self.report({"INFO"}, f"{done}: {result.check} ({result.size_mb:,} MB in {result.folder}); model jobs now run there")
        else:
            self.report(
                {"INFO"}, f"Would install {result.requirement} ({result.reason}): about {result.download_mb:,} MB into {result.folder}"
            )
        return result.summary()


class DIFFUSION3D_OT_allow_downloads(ExplainedPoll, bpy.types.Operator):
    """Let the engine download models from Hugging Face (while Blender's online access is on)"""

    bl_idname = "diffusion3d.allow_downloads"
    bl_label = "Allow Downloads"

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        prefs = session.preferences(context)
        return "Downloads are allowed already" if prefs is None or prefs.allow_downloads else ""

    def execute(self, context: bpy.types.Context) -> set[str]:
        session.preferences(context).allow_downloads = True
        note = "" if bpy.app.online_access else " (Blender's online access is off: turn it on in Preferences → System)"
        self.report({"INFO"}, f"Model downloads allowed{note}")
        return {"FINISHED"}


class DIFFUSION3D_OT_show_preferences(ExplainedPoll, bpy.types.Operator):
    """Open Diffusion 3D's preferences (the engine, the models folder, downloads)"""

    bl_idname = "diffusion3d.show_preferences"
    bl_label = "Diffusion 3D Preferences"

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        return "Blender runs without a window" if bpy.app.background else ""

    def execute(self, context: bpy.types.Context) -> set[str]:
        bpy.ops.preferences.addon_show(module=session.ADDON)
        return {"FINISHED"}
