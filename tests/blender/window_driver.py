"""Drive an operator's UI path (invoke, then timer and key events) as Blender's window manager would.

The PyPI ``bpy`` module has no window, so ``invoke`` there falls back to the blocking path. Here the
operator's own methods run on a stand-in instance with a stand-in window and window manager, and the
add-on's operator modules see a ``bpy`` that answers as a session with a window: not in background, and a
render started with ``INVOKE_DEFAULT`` is Blender's real render, run to its end (so Blender's own
``render_complete`` handlers fire), or stopped as if the user pressed Esc in the render window (its
``render_cancel`` handlers fire). Everything else is the real ``bpy``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import bpy

TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")
MOUSE = SimpleNamespace(type="MOUSEMOVE", value="NOTHING")

_PROPERTY_FALLBACK = {
    "BoolProperty": False,
    "IntProperty": 0,
    "FloatProperty": 0.0,
    "StringProperty": "",
    "FloatVectorProperty": (0.0, 0.0, 0.0),
}


class _Over:
    """``real`` with some attributes replaced."""

    def __init__(self, real: Any, **replaced: Any) -> None:
        self._real = real
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class WindowedBpy(_Over):
    """``bpy`` as a session with a window sees it. ``esc_on_render`` = k: the user stops the k-th render job."""

    def __init__(self, esc_on_render: int | None = None) -> None:
        self.render_jobs = 0
        self.esc_on_render = esc_on_render
        app = _Over(bpy.app, background=False, is_job_running=lambda kind: False)  # each render job has ended by the next timer
        ops = _Over(bpy.ops, render=_Over(bpy.ops.render, render=self._render))
        super().__init__(bpy, app=app, ops=ops)

    def _render(self, *args: Any, **kwargs: Any) -> set[str]:
        if not args or args[0] != "INVOKE_DEFAULT":
            return bpy.ops.render.render(*args, **kwargs)  # type: ignore[no-any-return]
        self.render_jobs += 1
        if self.render_jobs == self.esc_on_render:
            for handler in list(bpy.app.handlers.render_cancel):
                handler(bpy.context.scene, None)
        else:
            bpy.ops.render.render(**kwargs)
        return {"RUNNING_MODAL"}


class WindowManager:
    """Records what an operator asks of the window manager: timers, the progress bar, modal handlers, confirmations."""

    def __init__(self) -> None:
        self.timers = 0
        self.progress: list[int] = []
        self.progress_open = False
        self.modal_handlers: list[Any] = []
        self.confirmations: list[dict[str, str]] = []  # the texts of each confirmation asked for (nobody answers)

    def event_timer_add(self, step: float, window: Any = None) -> object:
        self.timers += 1
        return object()

    def event_timer_remove(self, timer: Any) -> None:
        self.timers -= 1

    def progress_begin(self, low: int, high: int) -> None:
        self.progress_open = True

    def progress_update(self, value: int) -> None:
        self.progress.append(value)

    def progress_end(self) -> None:
        self.progress_open = False

    def modal_handler_add(self, operator: Any) -> bool:
        self.modal_handlers.append(operator)
        return True

    def invoke_confirm(self, operator: Any, event: Any, **texts: str) -> set[str]:
        """Blender's popup: the operator runs later, if the user confirms; the call itself returns at once."""
        self.confirmations.append(texts)
        return {"INTERFACE"}

    def __getattr__(self, name: str) -> Any:  # the rest (the add-on's own properties) is the real window manager's
        return getattr(bpy.context.window_manager, name)


class Context:
    """``bpy.context`` with a window, a recording window manager and no screen."""

    def __init__(self) -> None:
        self.window = object()
        self.window_manager = WindowManager()
        self.screen = None

    def __getattr__(self, name: str) -> Any:
        return getattr(bpy.context, name)


def _default(deferred: Any) -> Any:
    keywords = deferred.keywords
    if "default" in keywords:
        return keywords["default"]
    if deferred.function.__name__ == "EnumProperty":
        return keywords["items"][0][0]
    return _PROPERTY_FALLBACK[deferred.function.__name__]


def stand_in(op_class: type, **options: Any) -> Any:
    """An object with the operator's methods and options, without Blender's operator struct."""
    namespace: dict[str, Any] = {}
    for klass in reversed(op_class.__mro__):
        if klass.__module__ not in ("builtins", "bpy_types", "bpy.types"):
            namespace.update({k: v for k, v in vars(klass).items() if not k.startswith("__")})
    namespace["__class__"] = property(lambda self: op_class)  # the operators' zero-argument super() resolves
    op = type(op_class.__name__, (), namespace)()
    op.properties = SimpleNamespace(is_property_set=set(options).__contains__)  # set: given by the caller
    for name, deferred in op_class.__annotations__.items():
        if not hasattr(deferred, "keywords"):
            continue  # a plain annotation, not an operator option
        setattr(op, name, options.pop(name) if name in options else _default(deferred))
    if options:
        raise TypeError(f"{op_class.__name__} has no options {sorted(options)}")
    op.reports = []
    op.report = lambda kinds, message: op.reports.append((next(iter(kinds)), message))
    return op


def windowed(addon: Any, monkeypatch: Any, esc_on_render: int | None = None) -> WindowedBpy:
    """Give every operator module of the add-on the windowed ``bpy``."""
    fake = WindowedBpy(esc_on_render)
    prefix = addon.operators.__name__ + "."
    for name, module in list(sys.modules.items()):
        if name.startswith(prefix) and getattr(module, "bpy", None) is bpy:
            monkeypatch.setattr(module, "bpy", fake)
    return fake


def run(
    op: Any,
    context: Context,
    event_at: Callable[[int], Any] = lambda step: TIMER,
    timeout: float = 120.0,
    start: Callable[[], set[str]] | None = None,
) -> set[str]:
    """``invoke`` (or ``start``: a confirmed dialog's ``execute``), then one event per step (``event_at(step)``, a timer by
    default) until the operator ends."""
    bpy.context.view_layer.update()  # a window's event loop has synced the scene before any click
    result = start() if start is not None else op.invoke(context, None)
    assert result != {"PASS_THROUGH"}
    deadline, step = time.monotonic() + timeout, 0
    while result in ({"RUNNING_MODAL"}, {"PASS_THROUGH"}):
        assert op in context.window_manager.modal_handlers
        assert time.monotonic() < deadline, "the modal operator never ended"
        result = op.modal(context, event_at(step))
        step += 1
        time.sleep(0.005)  # an engine job runs on its own thread
    return result  # type: ignore[no-any-return]


def assert_closed(addon: Any, context: Context) -> None:
    """No timer, no progress bar, nothing in flight: the next job may start."""
    wm = context.window_manager
    assert wm.timers == 0 and not wm.progress_open
    assert not addon.operators.machinery.job.current.busy()
