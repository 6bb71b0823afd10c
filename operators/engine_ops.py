"""Engine housekeeping: check what the engine's Python has, release it, cancel a job."""

from __future__ import annotations

from dataclasses import dataclass

import bpy

from ..engine.info import InfoRequest, InfoResult
from .machinery import session
from .machinery.job import EngineJobOperator, current


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


class DIFFUSION3D_OT_release_engine(bpy.types.Operator):
    """Stop the engine worker and free the memory its models hold"""

    bl_idname = "diffusion3d.release_engine"
    bl_label = "Release Engine"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        started = session.started()
        if not started:
            cls.poll_message_set("The engine is not started: nothing to release")
        return started

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        """Ask first when it would cancel a running job (a script's call runs ``execute`` directly, without asking)."""
        if current.running() is None:
            return self.execute(context)
        return context.window_manager.invoke_confirm(  # type: ignore[return-value]  # the stubs type it as a set of literals
            self,
            event,
            title="Release the engine?",
            message=f"{current.label} is running: releasing the engine cancels it",
            confirm_text="Release and Cancel",
            icon="WARNING",
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        handle = current.running()
        if handle is not None:
            handle.cancel()
        session.release()
        self.report({"INFO"}, "Engine released")
        return {"FINISHED"}


class DIFFUSION3D_OT_cancel_job(bpy.types.Operator):
    """Cancel the running Diffusion 3D job"""

    bl_idname = "diffusion3d.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        busy = bool(current.busy())
        if not busy:
            cls.poll_message_set("No Diffusion 3D job is running")
        return busy

    def execute(self, context: bpy.types.Context) -> set[str]:
        current.request_cancel()
        return {"FINISHED"}

