"""Running an engine job from an operator: modal in the UI, blocking otherwise.

An operator subclasses :class:`EngineJobOperator` and writes three steps that
read top to bottom: ``prepare`` reads Blender state into a request (and raises
:class:`UserError` on bad input), the engine runs the job, ``finish`` writes
the result into Blender on the main thread. ``discard`` undoes whatever
``prepare`` staged when the job fails or is cancelled, so nothing half-built
is left behind.

Invoked from the UI, the job runs modal with a progress bar, Esc cancels it.
Called from a script (``EXEC_DEFAULT``) or in background mode it blocks.

Whatever fails in any step (bad input, the engine, a bug, Blender refusing a
setting) ends the job the same way: what was staged is undone, the reason is
reported in one line, the progress bar and timer are closed and the add-on is
free for the next job.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable, ClassVar, Optional

import bpy

from ...engine.client import JobHandle
from ...engine.errors import EngineError, JobCancelled
from . import live_preview, session
from .render_setup import render_state, watch_render


class UserError(Exception):
    """Bad input found on the Blender side; the message goes to the report."""


def _tag_redraw(context: bpy.types.Context) -> None:
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen is not None else ():
        if area.type == "VIEW_3D":
            area.tag_redraw()


class EngineJobOperator:
    """Mixin for ``bpy.types.Operator`` classes that run one engine job."""

    job_label: ClassVar[str] = "Working"
    _handle: Optional[JobHandle] = None
    _timer: Any = None
    _shown: Any = None  # the progress event last drawn

    # What subclasses write ---------------------------------------------------
    def prepare(self, context: bpy.types.Context) -> tuple[str, Any]:
        raise NotImplementedError

    def finish(self, context: bpy.types.Context, result: Any) -> None:
        raise NotImplementedError

    def discard(self, context: bpy.types.Context) -> None:
        """Undo what ``prepare`` staged (temporary files, loaded images)."""

    # Shared flow --------------------------------------------------------------
    def _attempt(self, context: bpy.types.Context, work: Callable[[], None]) -> Optional[set[str]]:
        """Run ``work``; if it fails, end the job as :meth:`_fail` does."""
        try:
            work()
        except Exception as exc:
            return self._fail(context, exc)
        return None

    def _fail(self, context: bpy.types.Context, exc: Exception) -> set[str]:
        """Undo what was staged, report why in one line, and cancel (called while ``exc`` is handled)."""
        if isinstance(exc, JobCancelled):
            self._discard(context)
            self.report({"WARNING"}, f"{self.job_label}: cancelled, nothing was changed")
        elif isinstance(exc, (UserError, EngineError)):
            self._discard(context)
            self.report({"ERROR"}, str(exc))
        else:  # a bug, or Blender refusing something: still one readable line, nothing half-done
            traceback.print_exc()
            self._discard(context)
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            self.report({"ERROR"}, f"{self.job_label} failed: {type(exc).__name__}: {first_line} (details in the system console)")
        return {"CANCELLED"}

    def _stop_following(self, context: bpy.types.Context, exc: Exception) -> set[str]:
        """The job's progress cannot be read any more: cancel it, free the session, end as any failure ends."""
        assert self._handle is not None
        self._handle.cancel()
        self._forget_job()
        return self._fail(context, exc)

    @staticmethod
    def _forget_job() -> None:
        session.active.update(handle=None, label="")
        live_preview.clear()

    def _discard(self, context: bpy.types.Context) -> None:
        try:
            self.discard(context)
        except Exception:  # cleaning up must not hide why the job stopped
            traceback.print_exc()

    def _submit(self, context: bpy.types.Context) -> Optional[set[str]]:
        if self._refuse_if_busy():
            return {"CANCELLED"}

        def start() -> None:
            name, request = self.prepare(context)
            self._handle = session.client(context).submit(name, request)

        refused = self._attempt(context, start)
        if refused is None:
            session.active.update(handle=self._handle, label=self.job_label)
        return refused

    def _refuse_if_busy(self) -> bool:
        label = session.busy()
        if label:
            self.report({"ERROR"}, f"Diffusion 3D is busy ({label}); cancel it or wait")
        return bool(label)

    def _conclude(self, context: bpy.types.Context) -> set[str]:
        handle = self._handle
        assert handle is not None
        self._forget_job()
        return self._attempt(context, lambda: self.finish(context, handle.outcome())) or {"FINISHED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Blocking run: scripts, the Python console, background mode."""
        refused = self._submit(context)
        if refused is not None:
            return refused
        assert self._handle is not None
        background = bpy.app.background

        def show(p: Any) -> None:
            if background:
                print(f"[diffusion3d] {self.job_label}: {p.done}/{p.total} {p.message}", flush=True)

        try:
            self._handle.wait(show)
        except EngineError:
            pass  # _conclude reports it
        except Exception as exc:
            return self._stop_following(context, exc)
        return self._conclude(context)

    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        refused = self._submit(context)
        if refused is not None:
            return refused
        self._begin_modal(context)
        return {"RUNNING_MODAL"}

    def _begin_modal(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)  # type: ignore[arg-type]  # a mixin of Operator

    def _invoke_stage(self, context: bpy.types.Context, start: Callable[[], None], label: str) -> set[str]:
        """From the UI, start a Blender stage (renders) that runs modal until it submits the engine job."""
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if self._refuse_if_busy():
            return {"CANCELLED"}
        refused = self._attempt(context, start)
        if refused is not None:
            return refused
        session.active.update(label=label, blender_stage=True, cancel=False, fraction=0.0)
        self._begin_modal(context)
        return {"RUNNING_MODAL"}

    @staticmethod
    def _stage_progress(context: bpy.types.Context, done: int, total: int, label: str) -> None:
        fraction = done / total
        context.window_manager.progress_update(int(1000 * fraction))
        session.active.update(fraction=fraction, label=f"{label}: {done}/{total}")

    def _stage_step(self, context: bpy.types.Context, step: Callable[[], None]) -> set[str]:
        """One modal step of a Blender stage (renders) that ends by submitting the engine job to ``self._handle``."""
        refused = self._attempt(context, step)
        if refused is not None:
            session.active.update(blender_stage=False, label="", cancel=False)
            self._end_modal(context)
            return refused
        if self._handle is not None:
            session.active.update(handle=self._handle, label=self.job_label, blender_stage=False)
        return {"RUNNING_MODAL"}

    @staticmethod
    def _start_render_job(**options: Any) -> None:
        """Start Blender's own render job (its progress bar and Esc) and watch for its end."""
        watch_render(True)
        started = bpy.ops.render.render("INVOKE_DEFAULT", **options)
        if "RUNNING_MODAL" not in started:  # type: ignore[operator]  # bpy.ops returns a set
            watch_render(False)
            raise UserError("Blender could not start the render (is another render running?)")

    def _render_job_step(self, context: bpy.types.Context, event: Any, what: str, after: Callable[[], None]) -> set[str]:
        """A modal step while a render job runs: once it has ended, ``after`` it, or stop (Esc, Cancel, no result)."""
        if event.type != "TIMER":
            return {"PASS_THROUGH"}  # Esc belongs to the render job itself
        if bpy.app.is_job_running("RENDER"):
            return {"RUNNING_MODAL"}
        state = render_state()
        watch_render(False)

        def step() -> None:
            if state == "CANCELLED" or session.active["cancel"]:
                raise JobCancelled("render cancelled")
            if state != "COMPLETE":
                raise UserError(f"{what} stopped without a result (see Blender's report)")
            after()

        return self._stage_step(context, step)

    def _end_modal(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()

    def modal(self, context: bpy.types.Context, event: Any) -> set[str]:
        handle = self._handle
        assert handle is not None
        if event.type == "ESC" and event.value == "PRESS":
            handle.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}

        def show_progress() -> None:
            handle.poll()
            if handle.progress is not None:
                context.window_manager.progress_update(int(handle.progress.fraction * 1000))
                if handle.progress is not self._shown and handle.progress.preview is not None and handle.progress.preview.ndim == 3:
                    live_preview.show(handle.progress.preview, context.screen)  # only a new step's preview
                self._shown = handle.progress
            _tag_redraw(context)

        try:
            show_progress()
        except Exception as exc:
            self._end_modal(context)
            return self._stop_following(context, exc)
        if not handle.finished:
            return {"RUNNING_MODAL"}
        self._end_modal(context)
        return self._conclude(context)


def progress_text(handle: JobHandle) -> str:
    p = handle.progress
    return f"{p.message} ({p.done}/{p.total})" if p is not None and p.total else "Starting…"
