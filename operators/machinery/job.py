"""One life cycle for every operator that runs an engine job.

An operator subclasses :class:`EngineJobOperator`, names its engine ``job``
(whose request declares the operator's properties, ``engine/params.py``) and
writes what is its own:

- ``read(context, request)``: what the request takes from Blender (the last
  capture, a camera, the default output folder); bad input raises :class:`UserError`;
- ``stage(context, request)`` (render-first operators only): the :class:`Stage`
  that does the Blender work before the engine (renders);
- ``prepare(context, request)``: the request completed with what the stage made;
- ``finish(context, result)``: write the result into Blender, on the main thread,
  and return what ``batch.py`` prints of it;
- ``discard(context)``: undo what ``stage``/``prepare`` made outside the stage
  (output folders, loaded images) when the job fails or is cancelled.

The base drives one phase sequence, the same from a script and from the UI:
check the add-on is free → build the request from the properties, read, and
validate it (the engine's one check: a refusal names the value and what is
allowed; warnings are reported) → stage (start, steps, done; its ``undo``
always) → prepare → engine job → finish, or on any failure: undo the stage,
discard, report one line. From a script (``EXEC_DEFAULT``) or in background mode it
blocks; invoked from the UI it runs modal: one stage step or engine poll per
timer event, a render step as Blender's own render job (its progress and Esc),
Esc or the panel's Cancel between steps.

What is in flight, for the panel, Cancel and the busy check, is one
:class:`JobState`: :data:`current`. Every operator of both mixins has one
``poll`` (:class:`PolledOperator`): its button is greyed out, the reason as its
tooltip, while a job is in flight or while its input is certainly missing.

Undo: an operator whose ``bl_options`` hold ``UNDO`` gets its one undo step from
Blender on either path, also when its modal phase ends (the window manager pushes
the step when ``modal`` returns FINISHED, as when ``execute`` does), so the mixin
pushes none itself: a second step would make the first Ctrl+Z seem to do nothing.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import bpy

from ...engine import interrupts, jobs, params
from ...engine.client import JobHandle
from ...engine.errors import EngineError, JobCancelled
from ...engine.progress import ProgressLine, printer
from . import declared, last_result, live_preview, session
from .render_setup import render_progress, render_state, watch_render


class UserError(Exception):
    """Bad input found on the Blender side; the message goes to the report."""


@dataclass
class JobState:
    """The job in flight: a Blender stage (no engine handle yet, still keeping other jobs out), then its engine job."""

    label: str = ""
    handle: JobHandle | None = None
    in_blender_stage: bool = False
    fraction: float = 0.0  # of the Blender stage; an engine job reports its own
    cancel_requested: bool = False  # asks a Blender stage to stop at its next step (an engine job has its own token)
    naming: params.Naming = params.label_name  # how refusals name a parameter (batch.py: its options)
    tracebacks: bool = True  # a bug's traceback to the console (batch.py: with --debug only)
    warnings: list[str] = field(default_factory=list)  # the last request's unusual values
    summary: dict[str, Any] = field(default_factory=dict)  # what the last operator made, for batch.py's JSON line

    def running(self) -> JobHandle | None:
        handle = self.handle
        return handle if handle is not None and not handle.finished else None

    def busy(self) -> str:
        """The label of what is in flight, or "" when a new job may start."""
        return self.label if self.running() is not None or self.in_blender_stage else ""

    def request_cancel(self) -> None:
        """Cancel what is in flight: the engine job, or the Blender stage at its next step."""
        handle = self.running()
        if handle is not None:
            handle.cancel()
        if self.in_blender_stage:
            self.cancel_requested = True

    def start_stage(self, label: str) -> None:
        self.label, self.in_blender_stage, self.fraction, self.cancel_requested = label, True, 0.0, False

    def stage_progress(self, label: str, done: int, total: int) -> None:
        self.fraction, self.label = done / total, f"{label}: {done}/{total}"

    def start_engine(self, handle: JobHandle, label: str) -> None:
        self.handle, self.label, self.in_blender_stage, self.cancel_requested = handle, label, False, False

    def clear(self) -> None:
        self.label, self.handle, self.in_blender_stage, self.fraction, self.cancel_requested = "", None, False, 0.0, False

    @contextmanager
    def blender_stage(self, label: str) -> Iterator[None]:
        """A blocking Blender stage: other jobs are refused and Cancel is heard until it ends."""
        self.start_stage(label)
        try:
            yield
        finally:
            self.clear()


#: What is in flight now (one job at a time).
current = JobState()
interrupts.on_request(current.request_cancel)  # batch.py's Ctrl-C: a Blender stage stops at its next step


class Stage:
    """Blender work before an operator's engine job, one step at a time (a render, a view).

    ``start`` changes what the stage needs and says how many steps there are.
    A ``step`` returns options for ``bpy.ops.render.render`` when the step is a
    render (blocking: rendered at once; UI: Blender's render job), after which
    ``rendered`` checks its output; or None when the step did its work itself.
    ``done`` runs after the last step, while the stage's changes are still in
    place. ``undo`` puts back everything ``start`` changed; the base calls it
    after ``done`` and after any failure, so it must be safe to call twice.
    """

    label: ClassVar[str] = "Rendering"  # shown while the stage runs
    render_name: ClassVar[str] = "The render"  # "<render_name> stopped without a result"

    def start(self, context: bpy.types.Context) -> int:
        raise NotImplementedError

    def step(self, context: bpy.types.Context, index: int) -> dict[str, Any] | None:
        raise NotImplementedError

    def rendered(self, context: bpy.types.Context, index: int) -> None:
        """After step ``index``'s render has ended."""

    def done(self, context: bpy.types.Context) -> None:
        """After the last step, before ``undo``."""

    def undo(self) -> None:
        raise NotImplementedError


def busy_reason() -> str:
    """Why no job may start now, naming what is in flight; "" when nothing is."""
    label = current.busy()
    return f"Diffusion 3D is busy ({label}); cancel it or wait" if label else ""


DialogIcon = Literal["WARNING", "QUESTION"]


def ask_first(
    operator: Any, context: bpy.types.Context, event: Any, title: str, message: str, confirm: str, icon: DialogIcon = "WARNING"
) -> set[str]:
    """A click's confirmation dialog (``execute`` runs once confirmed; a script's call skips ``invoke`` and the dialog)."""
    asked = context.window_manager.invoke_confirm(operator, event, title=title, message=message, confirm_text=confirm, icon=icon)
    return asked  # type: ignore[return-value]  # the stubs type it as a set of literals


class ExplainedPoll:
    """Mixin: a ``poll`` that says why not (``unavailable``'s reason, as the button's tooltip and ``bpy.ops``' error)."""

    @classmethod
    def unavailable(cls, context: bpy.types.Context) -> str:
        """Why this operator would certainly fail in ``context`` whatever its options (missing input), or "" when it can run.

        Blender asks at every redraw of its button, and the poll cannot see the options: override it only with a cheap
        check that fails whatever they are. It is the operator's own check (every call runs it first, the poll's or
        not), so the operator does not repeat it.
        """
        return ""

    @classmethod
    def refusal(cls, context: bpy.types.Context) -> str:
        return cls.unavailable(context)

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        reason = cls.refusal(context)
        if reason:
            cls.poll_message_set(reason)  # type: ignore[attr-defined]  # a mixin of Operator
        return not reason


class PolledOperator(ExplainedPoll):
    """Mixin: the one ``poll`` of the job operators (both mixins below). Their button is greyed out while a job is in
    flight (one at a time) or while ``unavailable`` says why the operator would certainly fail, the reason as its tooltip
    and as ``bpy.ops``' error. A call that skips the poll (``execute``/``invoke`` called directly) is refused alike."""

    @classmethod
    def refusal(cls, context: bpy.types.Context) -> str:
        return busy_reason() or cls.unavailable(context)

    def refused(self, context: bpy.types.Context) -> bool:
        """Report the poll's reason (a direct call of ``execute``/``invoke`` skips the poll); True when there is one."""
        reason = self.refusal(context)
        if reason:
            self.report({"ERROR"}, reason)  # type: ignore[attr-defined]  # a mixin of Operator
        return bool(reason)


def checked_request(operator: Any, context: bpy.types.Context, cls: type, read: Any = None) -> Any:
    """The request ``cls`` from an operator's properties, completed from Blender by ``read`` and validated.

    Its warnings are reported and kept in :data:`current`; a refusal raises :class:`UserError` with the engine's one line.
    """
    request = declared.request(operator, cls)
    if any(f.name == "access" for f in dataclasses.fields(request)):
        request = dataclasses.replace(request, access=session.model_access(session.preferences(context)))
    try:
        params.validate(request, current.naming, models=False, paths=False, rules=False)  # each value, before Blender is read
        if read is not None:
            request = read(context, request)
        current.warnings = params.validate(request, current.naming)
    except EngineError as exc:
        raise UserError(str(exc)) from None
    for warning in current.warnings:
        operator.report({"WARNING"}, warning)
    return request


class DeclaredOperator(PolledOperator):
    """Mixin for operators that work in Blender alone (no engine job): ``request`` declares their properties, ``run`` does the work."""

    request: ClassVar[type]

    def run(self, context: bpy.types.Context, request: Any) -> dict[str, Any]:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        if self.refused(context):
            return {"CANCELLED"}
        current.summary = {}
        try:
            current.summary = self.run(context, checked_request(self, context, self.request))
        except UserError as exc:
            self.report({"ERROR"}, str(exc))  # type: ignore[attr-defined]  # a mixin of Operator
            return {"CANCELLED"}
        return {"FINISHED"}


def _tag_redraw(context: bpy.types.Context) -> None:
    screen = getattr(context, "screen", None)
    for area in screen.areas if screen is not None else ():
        if area.type == "VIEW_3D":
            area.tag_redraw()


class EngineJobOperator(PolledOperator):
    """Mixin for ``bpy.types.Operator`` classes that run one engine job (after a Blender stage, if they have one)."""

    # Blender evaluates a registered class's annotations, mixins' too. A typing generic of a class from a
    # module that imports bpy (``Optional[Stage]``) would stay in typing's cache, keep bpy alive through
    # interpreter teardown and hang bpy 4.5's exit (tests/blender/test_register.py catches it): write
    # ``X | None`` and keep such annotations plain.
    job: ClassVar[str]  # the engine job (engine/jobs.py); its request declares the operator's properties
    job_label: ClassVar[str] = "Working"
    in_blender: ClassVar[bool] = False  # run in Blender's own Python whatever the preferences (the engine's own set-up)
    _request: Any = None
    _handle: JobHandle | None = None
    _stage: Stage | None = None
    _timer: Any = None
    _shown: Any = None  # the progress event last drawn
    _on_event: Any = None  # the modal phase's event handler: a stage step, or following the engine job
    _steps = 0  # of the stage
    _next_step = 0
    _rendering = False  # a stage step's render job is running

    @classmethod
    def request_type(cls) -> type:
        return jobs.job(cls.job).request

    # What subclasses write ---------------------------------------------------
    def read(self, context: bpy.types.Context, request: Any) -> Any:
        """What the request takes from Blender, before it is validated."""
        return request

    def stage(self, context: bpy.types.Context, request: Any) -> Stage | None:
        """Render-first operators: the Blender stage (not started yet)."""
        return None

    def prepare(self, context: bpy.types.Context, request: Any) -> Any:
        """The request completed with what the stage made."""
        return request

    def finish(self, context: bpy.types.Context, result: Any) -> dict[str, Any] | None:
        """Write the result into Blender; return what ``batch.py`` prints of it."""
        raise NotImplementedError

    def discard(self, context: bpy.types.Context) -> None:
        """Undo what ``stage``/``prepare`` made outside the stage (temporary files, loaded images)."""

    # Blocking: scripts, the Python console, background mode ---------------------
    def execute(self, context: bpy.types.Context) -> set[str]:
        if self.refused(context):
            return {"CANCELLED"}
        try:
            stage = self._stage = self.stage(context, self._checked(context))
            if stage is not None:
                self._run_stage(context, stage)
            self._submit(context)
        except Exception as exc:
            return self._fail(context, exc)
        assert self._handle is not None
        try:
            self._handle.wait(printer(self.job_label) if bpy.app.background else lambda p: None)
        except EngineError:
            pass  # _conclude reports it
        except Exception as exc:
            return self._stop_following(context, exc)
        return self._conclude(context)

    def _run_stage(self, context: bpy.types.Context, stage: Stage) -> None:
        with current.blender_stage(stage.label):
            line: ProgressLine | None = None
            try:
                total = stage.start(context)
                if bpy.app.background:  # a line from the first second, its renders' samples on it
                    line = ProgressLine(stage.label, total)
                    line.show(0)
                for index in range(total):
                    options = stage.step(context, index)
                    if options is not None:
                        at = line.show if line is not None else lambda done, note: None
                        with render_progress(lambda fraction, samples: at(index + fraction, samples)):  # noqa: B023  # during the step
                            bpy.ops.render.render(**options)
                        stage.rendered(context, index)
                    if line is not None:
                        line.show(index + 1)
                    if current.cancel_requested:  # the panel's Cancel, a signal, or a script's handler between steps
                        raise JobCancelled(f"{stage.label.lower()} cancelled")
                stage.done(context)
            finally:
                if line is not None:
                    line.close()
                stage.undo()

    # Modal, from the UI ----------------------------------------------------------
    def invoke(self, context: bpy.types.Context, event: Any) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        if self.refused(context):
            return {"CANCELLED"}
        try:
            stage = self._stage = self.stage(context, self._checked(context))
            if stage is None:
                self._submit(context)
                self._on_event = self._follow_engine
            else:
                current.start_stage(stage.label)
                self._steps, self._next_step, self._rendering = stage.start(context), 0, False
                self._on_event = self._stage_event
        except Exception as exc:
            return self._fail(context, exc)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0, 1000)
        wm.modal_handler_add(self)  # type: ignore[arg-type]  # a mixin of Operator
        return self._advance_stage(context) if self._stage is not None else {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: Any) -> set[str]:
        return self._on_event(context, event)

    def _stage_event(self, context: bpy.types.Context, event: Any) -> set[str]:
        """An event while the stage runs: Esc between steps cancels; a timer advances the stage once a render job has ended."""
        if event.type == "ESC" and event.value == "PRESS" and not self._rendering:
            current.request_cancel()  # between steps; during a render job, Esc belongs to the render job
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._rendering and bpy.app.is_job_running("RENDER"):
            return {"RUNNING_MODAL"}
        return self._advance_stage(context)

    def _advance_stage(self, context: bpy.types.Context) -> set[str]:
        """End the step whose render job has ended, start the next step, or, after the last, hand over to the engine."""
        stage = self._stage
        assert stage is not None
        try:
            if self._rendering:
                self._end_render_step(context, stage)
            if current.cancel_requested:
                raise JobCancelled(f"{stage.label.lower()} cancelled")
            if self._next_step < self._steps:
                self._start_step(context, stage)
            if self._next_step == self._steps and not self._rendering:
                stage.done(context)
                stage.undo()
                self._submit(context)
                self._on_event = self._follow_engine
        except Exception as exc:
            self._end_modal(context)
            return self._fail(context, exc)
        return {"RUNNING_MODAL"}

    def _start_step(self, context: bpy.types.Context, stage: Stage) -> None:
        options = stage.step(context, self._next_step)
        if options is None:
            self._step_done(context, stage)
            return
        watch_render(True)  # Blender's own render job: its progress bar and Esc
        started = bpy.ops.render.render("INVOKE_DEFAULT", **options)
        if "RUNNING_MODAL" not in started:  # type: ignore[operator]  # bpy.ops returns a set
            watch_render(False)
            raise UserError("Blender could not start the render (is another render running?)")
        self._rendering = True

    def _end_render_step(self, context: bpy.types.Context, stage: Stage) -> None:
        state = render_state()
        watch_render(False)
        self._rendering = False
        if state == "CANCELLED" or current.cancel_requested:
            raise JobCancelled("render cancelled")
        if state != "COMPLETE":
            raise UserError(f"{stage.render_name} stopped without a result (see Blender's report)")
        stage.rendered(context, self._next_step)
        self._step_done(context, stage)

    def _step_done(self, context: bpy.types.Context, stage: Stage) -> None:
        self._next_step += 1
        context.window_manager.progress_update(int(1000 * self._next_step / self._steps))
        current.stage_progress(stage.label, self._next_step, self._steps)

    def _follow_engine(self, context: bpy.types.Context, event: Any) -> set[str]:
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

    def _end_modal(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()

    # Shared by both paths ---------------------------------------------------------
    def _checked(self, context: bpy.types.Context) -> Any:
        current.summary = {}
        self._request = checked_request(self, context, self.request_type(), self.read)
        return self._request

    def _submit(self, context: bpy.types.Context) -> None:
        request = self.prepare(context, self._request)
        client = session.blender_client() if self.in_blender else session.client(context)
        self._handle = client.submit(self.job, request)
        current.start_engine(self._handle, self.job_label)

    def _conclude(self, context: bpy.types.Context) -> set[str]:
        handle = self._handle
        assert handle is not None
        self._forget_job()
        try:
            current.summary = self.finish(context, handle.outcome()) or {}
        except Exception as exc:
            return self._fail(context, exc)
        last_result.record(type(self).bl_idname, current.summary)  # type: ignore[attr-defined]  # the class's: "diffusion3d.NAME"
        return {"FINISHED"}

    def _stop_following(self, context: bpy.types.Context, exc: Exception) -> set[str]:
        """The job's progress cannot be shown any more: stop it (its partial files go), then end as any failure ends."""
        assert self._handle is not None
        if not self._handle.stop():  # deaf to cancel: a worker process can be stopped, Blender's own Python waits for the job
            session.release()
        return self._fail(context, exc)

    @staticmethod
    def _forget_job() -> None:
        current.clear()
        live_preview.clear()

    def _fail(self, context: bpy.types.Context, exc: Exception) -> set[str]:
        """Put back what the stage changed, undo what was made, free the add-on, report why in one line (called while ``exc`` is handled)."""
        if isinstance(exc, (JobCancelled, UserError, EngineError)):
            self._clean_up(context)
            if isinstance(exc, JobCancelled):
                self.report({"WARNING"}, f"{self.job_label}: cancelled, nothing was changed")
            else:
                self.report({"ERROR"}, str(exc))
        else:  # a bug, or Blender refusing something: still one readable line, nothing half-done
            if current.tracebacks:
                traceback.print_exc()
            self._clean_up(context)
            first_line = (str(exc).strip().splitlines() or [""])[0][:300]
            details = " (details in the system console)" if current.tracebacks else ""
            self.report({"ERROR"}, f"{self.job_label} failed: {type(exc).__name__}: {first_line}{details}")
        return {"CANCELLED"}

    def _clean_up(self, context: bpy.types.Context) -> None:
        if self._rendering:
            watch_render(False)
            self._rendering = False
        undos = [self._stage.undo] if self._stage is not None else []
        for undo in [*undos, lambda: self.discard(context)]:
            try:
                undo()
            except Exception:  # cleaning up must not hide why the job stopped
                if current.tracebacks:
                    traceback.print_exc()
        self._forget_job()


def progress_text(handle: JobHandle) -> str:
    p = handle.progress
    return f"{p.message} ({p.done}/{p.total})" if p is not None and p.total else "Starting…"
