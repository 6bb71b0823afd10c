"""The ``echo`` job: diagnostics for the transports (arrays out and back, paced steps, a chosen failure)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .progress import Reporter


@dataclass
class EchoRequest:
    """Diagnostics: send arrays back, optionally in paced steps (transport checks, benchmarks)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    seconds_per_step: float = 0.0
    fail_with: str = ""  # raise this message instead of returning, to test error paths


@dataclass
class EchoResult:
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    steps_done: int = 0


def echo(request: EchoRequest, report: Reporter) -> EchoResult:
    report.total = max(request.steps, 1)
    for i in range(request.steps):
        time.sleep(request.seconds_per_step)
        report.step(f"Step {i + 1} of {request.steps}", preview=np.full((2, 4, 3), i % 256, np.uint8))
    if request.fail_with:
        raise RuntimeError(request.fail_with)
    return EchoResult(arrays=dict(request.arrays), steps_done=request.steps)
