"""Process-wide engine state: what "Release engine" frees; where native code's output goes."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from typing import TextIO

#: Callbacks that drop cached models; model loaders register theirs here.
_releasers: list[Callable[[], None]] = []


def on_release(callback: Callable[[], None]) -> None:
    _releasers.append(callback)


def release_memory() -> None:
    """Drop cached models and give freed memory back to the device."""
    for release in _releasers:
        release()
    gc.collect()
    torch = sys.modules.get("torch")  # only if a job already imported it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def divert_stdout(to: str | int) -> TextIO:
    """Point file descriptor 1 (what C libraries and Blender print to) at ``to`` (a path or a descriptor); keep Python's
    ``sys.stdout`` on the real stdout, and return it (the worker's protocol, ``batch.py``'s progress lines)."""
    sys.stdout.flush()
    real = open(os.dup(1), "w", encoding="utf-8", newline="\n", buffering=1)  # noqa: SIM115  # this process's stdout from now on
    target = os.open(to, os.O_WRONLY) if isinstance(to, str) else to
    os.dup2(target, 1)
    if isinstance(to, str):
        os.close(target)
    sys.stdout = real
    return real
