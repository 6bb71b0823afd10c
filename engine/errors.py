"""Exceptions whose message is meant for the user, as one readable line."""

import re


class EngineError(Exception):
    """A failure the user can act on; ``str(err)`` is the whole message."""


class BadInput(EngineError):
    """The request itself is wrong (missing file, bad size, bad values)."""


class JobCancelled(EngineError):
    """The user cancelled the job; nothing was written, unless its message says what it kept (after :data:`KEPT`)."""

    def __init__(self, message: str = "Cancelled") -> None:
        super().__init__(message)


#: How a cancelled job's message says what it keeps on purpose (a resumable checkpoint); it crosses the worker's pipe as text.
KEPT = "; kept "


def kept(exc: BaseException) -> str:
    """What a cancelled job kept, from its message; "" if nothing."""
    text = str(exc)
    return text.split(KEPT, 1)[1] if isinstance(exc, JobCancelled) and KEPT in text else ""


class WorkerDied(EngineError):
    """The subprocess worker exited while it had a job."""


def last_line(exc: BaseException) -> str:
    """The last line of one of our errors, or of Blender's error report (``Error: …``, or an operator's poll refusing:
    ``Operator bpy.ops.NAME.poll() …``), which ends in its reason."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    return re.sub(r"^Operator bpy\.ops\.[\w.]+\.poll\(\) ", "", lines[-1].removeprefix("Error: "))


def readable(exc: BaseException) -> str:
    """One line for any exception, including third-party ones.

    Our own errors already speak to the user; anything else gets its type name
    so "KeyError: 'x'" stays understandable.
    """
    if isinstance(exc, EngineError):
        text = str(exc)
    else:
        detail = str(exc).strip()
        text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return " ".join(text.split()) or type(exc).__name__
