"""pip's own output, read line by line, as progress notes: the package being fetched, its bytes, the rate, the time left.

pip 24.1+ prints ``Progress DONE of TOTAL`` lines with ``--progress-bar raw``; the package is the one its last
``Collecting``/``Downloading`` line named. Nothing is guessed: a line pip did not print is no progress.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

_COLLECTING = re.compile(r"^Collecting (\S+?)(?:[<>=!~ \[(]|$)")
_DOWNLOADING = re.compile(r"^\s*Downloading (\S+?)(?:-\d[^ ]*)? \(([\d.]+ [kMG]?B)\)")
_PROGRESS = re.compile(r"^Progress (\d+) of (\d+)$")
_INSTALLING = re.compile(r"^Installing collected packages: (.+)$")
_ERROR = re.compile(r"^ERROR: (.+)$")


def _mb(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


@dataclass
class PipProgress:
    """Feed pip's lines; each gives the note to show, if any. ``errors`` keeps pip's own ``ERROR:`` lines."""

    clock: Callable[[], float] = time.monotonic
    package: str = ""
    errors: list[str] = field(default_factory=list)
    _started: float = 0.0  # when the current download began
    _total: int = 0

    def feed(self, line: str) -> str:
        line = line.rstrip("\r\n")
        if m := _COLLECTING.match(line):
            self.package = m[1]
            return f"Collecting {self.package}"
        if m := _DOWNLOADING.match(line):
            self.package = m[1].split("/")[-1]
            return f"Downloading {self.package} ({m[2]})"
        if m := _PROGRESS.match(line):
            return self._progress(int(m[1]), int(m[2]))
        if m := _INSTALLING.match(line):
            count = len([p for p in m[1].split(",") if p.strip()])
            return f"Installing {count} package{'s' * (count != 1)}"
        if m := _ERROR.match(line):
            self.errors.append(m[1])
        return ""

    def _progress(self, done: int, total: int) -> str:
        now = self.clock()
        if done == 0 or total != self._total:
            self._started, self._total = now, total
        text = f"Downloading {self.package or 'a package'}: {_mb(done)} of {_mb(total)}"
        elapsed = now - self._started
        if done and elapsed > 0:
            rate = done / elapsed
            text += f", {_mb(rate)}/s, {max(0.0, (total - done) / rate):.0f} s left"
        return text
