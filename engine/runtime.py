"""Process-wide engine state: what "Release engine" frees."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable

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
