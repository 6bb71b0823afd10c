"""The training loss drawn as a small PNG beside the checkpoint: each step's loss in grey, a running mean in dark blue.

Drawn with numpy (no plotting library in the engine's requirements): a white
canvas, a frame, the curves as connected line segments on a linear scale from
0 to the largest loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..imagefiles import write_png

WIDTH, HEIGHT, MARGIN = 640, 320, 24
GREY, BLUE, FRAME = (190, 190, 190), (30, 60, 160), (90, 90, 90)


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _line(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: tuple[int, int, int]) -> None:
    count = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.round(np.linspace(x0, x1, count)).astype(int)
    ys = np.round(np.linspace(y0, y1, count)).astype(int)
    canvas[ys, xs] = colour


def _polyline(canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour: tuple[int, int, int]) -> None:
    if len(xs) == 1:
        canvas[int(round(ys[0])), int(round(xs[0]))] = colour
    for i in range(len(xs) - 1):
        _line(canvas, xs[i], ys[i], xs[i + 1], ys[i + 1], colour)


def draw_losses(losses: Sequence[float]) -> np.ndarray:
    """HEIGHT × WIDTH × 3 uint8: the losses over the steps."""
    canvas = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    left, right, top, bottom = MARGIN, WIDTH - MARGIN, MARGIN, HEIGHT - MARGIN
    for x0, y0, x1, y1 in ((left, top, right, top), (left, bottom, right, bottom), (left, top, left, bottom), (right, top, right, bottom)):
        _line(canvas, x0, y0, x1, y1, FRAME)
    values = np.asarray(losses, np.float64)
    if len(values) == 0 or not np.isfinite(values).all():
        return canvas
    peak = float(values.max()) or 1.0
    xs = left + (right - left) * (np.arange(len(values)) / max(1, len(values) - 1))
    scale = (bottom - top) / peak

    def to_y(v: np.ndarray) -> np.ndarray:
        return np.asarray(bottom - v * scale, np.float64)

    _polyline(canvas, xs, to_y(values), GREY)
    _polyline(canvas, xs, to_y(running_mean(values, max(1, len(values) // 20))), BLUE)
    return canvas


def write_loss_png(path: Path, losses: Sequence[float]) -> None:
    write_png(path, draw_losses(losses))
