"""Progress events and cancellation shared by every job and transport."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import JobCancelled


@dataclass
class Progress:
    """``done`` of ``total`` steps, with a message and an optional small preview."""

    done: int
    total: int
    message: str = ""
    preview: np.ndarray | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


class CancelToken:
    """Set by the client, checked by the job between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise JobCancelled()


ProgressCallback = Callable[[Progress], None]


class Reporter:
    """What a job holds: report a step, and stop there if cancelled."""

    def __init__(self, emit: ProgressCallback, token: CancelToken, total: int = 1) -> None:
        self._emit = emit
        self.token = token
        self.total = total
        self.done = 0

    def note(self, message: str) -> None:
        """Say what is happening without finishing a step (downloads, long loads); honours cancel."""
        self.token.check()
        self._emit(Progress(self.done, self.total, message))

    def step(self, message: str = "", preview: np.ndarray | None = None, done: int | None = None) -> None:
        """Mark one more step done (or set ``done``), emit it, then honour cancel."""
        self.token.check()
        self.done = self.done + 1 if done is None else done
        self._emit(Progress(self.done, self.total, message, preview))
        self.token.check()

    def part(self, first: int, count: int, label: str = "") -> Reporter:
        """A reporter for a job run inside this one: its progress fills this one's steps ``first`` to ``first + count``."""

        def emit(p: Progress) -> None:
            self.done = first + round(count * p.fraction)
            self._emit(Progress(self.done, self.total, label + p.message, p.preview))

        return Reporter(emit, self.token)
