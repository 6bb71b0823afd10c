"""Progress events and cancellation shared by every job and transport."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

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


#: How often a piped progress line is written (a terminal's live line is redrawn up to ten times a second).
PIPED_EVERY = 2.0


class ProgressLine:
    """One stage's progress for people: ``[diffusion3d] Label: done/total · rate · time left · note``.

    On a terminal it is one live line redrawn in place; piped (a log, a Ray task that reads it) it is a plain line at
    most every :data:`PIPED_EVERY` seconds, and always the first and the last. ``done`` may be fractional (part of a
    render); the count shows whole steps. Shown from any thread.
    """

    def __init__(self, label: str, total: int, out: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.out, self.clock = label, max(total, 1), out or sys.stdout, clock
        self.live = is_terminal(self.out)
        self.start = self.last = clock()
        self.shown = -1.0
        self._lock = threading.Lock()

    def show(self, done: float, note: str = "") -> None:
        with self._lock:
            now = self.clock()
            final = done >= self.total
            if self.shown >= self.total or (
                self.shown >= 0 and not final and (done < self.shown or now - self.last < (0.1 if self.live else PIPED_EVERY))
            ):
                return  # ended; or too soon, or behind what is shown (a render's statistics restart for its last pass)
            self.last, self.shown = now, done
            text = f"[diffusion3d] {self.label}: {int(done)}/{self.total}{self._pace(done, now - self.start, final)}"
            text += f" · {note}" if note else ""
            write_line(self.out, text, self.live, final)

    def close(self) -> None:
        """End a live line that did not reach its total (a failure, a cancel)."""
        with self._lock:
            if self.live and 0 <= self.shown < self.total:
                self.out.write("\n")
                self.out.flush()
                self.shown = self.total

    def _pace(self, done: float, elapsed: float, final: bool) -> str:
        if done <= 0 or elapsed < 0.5:
            return ""
        rate = done / elapsed
        pace = f" · {rate:.2f}/s" if rate >= 1 else f" · {1 / rate:.1f} s each"
        return pace + (f" · {duration(elapsed)}" if final else f" · ~{duration((self.total - done) / rate)} left")


def duration(seconds: float) -> str:
    """``7s``, ``3m05s``, ``1h02m``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def write_line(out: TextIO, text: str, live: bool, final: bool = False) -> None:
    """A progress line: on a terminal (``live``) redrawn in place, ended by the final one; piped, a line of its own."""
    out.write(f"\r{text}\x1b[K" + ("\n" if final else "") if live else text + "\n")
    out.flush()


def is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def printer(label: str, out: TextIO | None = None) -> ProgressCallback:
    """A progress callback that shows a job's events on a :class:`ProgressLine` (a new line when the total changes)."""
    line: list[ProgressLine] = []

    def show(p: Progress) -> None:
        if not line or line[0].total != max(p.total, 1):
            if line:
                line[0].close()
            line[:] = [ProgressLine(label, p.total, out)]
        line[0].show(p.done, p.message)

    return show
