"""A camera as the view mapper reads it: numbers, normalised to about [−1, 1] by ranges stored with the checkpoint.

Two parameterisations:

* ``DTU12``: the 12 numbers of the 3×4 projection matrix P = K [R | t] (OpenCV
  camera axes: x right, y down, looking along +z), row-major — the original's
  DTU form, so its protocol and checkpoints carry over.
* ``SPHERICAL``: about a target, (cos azimuth, sin azimuth, elevation in
  degrees, distance). Azimuth 0 looks from −Y, 90 from +X (as the multi-view
  cameras); cosine and sine keep a full orbit continuous.

Each entry is min–max scaled to [−1, 1] over the training cameras (on DTU, over
all of its calibration cameras, as the original), and the ranges are saved with
the checkpoint (the original recomputed them from its calibration files). A
camera outside the trained range still maps; how far outside, in normalised
units, is what a warning reports. An entry the training cameras never varied
(all views at one elevation, say) is constant: it normalises to 0 whatever the
camera's value, as the view mapper learnt nothing of it, and a camera elsewhere
is reported as read at the trained value. Spans within float rounding of zero
(1e-9 of the value) count as constant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..cameras import extrinsics
from ..choices import CAMERA_PARAMETERISATIONS
from ..errors import BadInput

SPHERICAL, DTU12 = CAMERA_PARAMETERISATIONS.ids
SIZES = {c.id: len(c.entries) for c in CAMERA_PARAMETERISATIONS}
CONSTANT = 1e-9  # a span this small relative to the entry's size is float rounding: the entry did not vary
TOLERANCE = 0.01  # normalised units a camera may stray outside the trained range before a warning


def projection_numbers(camera_to_world: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """P = K [R | t] of a camera given as camera-to-world with OpenGL axes (Blender's), flattened row-major: [12]."""
    rotation, translation = extrinsics(camera_to_world)  # world → camera, OpenCV axes (as 3D-DST's annotations)
    k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return (k @ np.concatenate([rotation, translation[:, None]], axis=1)).reshape(12)


def at_size(numbers: np.ndarray, kind: str, size: tuple[int, int], to: tuple[int, int]) -> np.ndarray:
    """Cameras' numbers [N, k] for images of ``size`` (width, height) as they read for images resized to ``to``.

    DTU12 holds the intrinsics: resizing scales the projection's first row by the
    width ratio and its second by the height ratio. SPHERICAL does not change.
    """
    values = np.array(numbers, np.float64)
    if kind == DTU12 and tuple(size) != tuple(to):
        rows = values.reshape(-1, 3, 4)
        rows[:, 0] *= to[0] / size[0]
        rows[:, 1] *= to[1] / size[1]
    return values


def spherical_numbers(camera_to_world: np.ndarray, target: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """(cos azimuth, sin azimuth, elevation°, distance) of the camera's position about ``target``: [4]."""
    offset = np.asarray(camera_to_world, np.float64)[:3, 3] - np.asarray(target, np.float64)
    distance = float(np.linalg.norm(offset))
    if distance == 0:
        raise BadInput("The camera sits on its target: no direction to read")
    azimuth = math.atan2(offset[0], -offset[1])
    elevation = math.degrees(math.asin(np.clip(offset[2] / distance, -1.0, 1.0)))
    return np.array([math.cos(azimuth), math.sin(azimuth), elevation, distance])


def _constant(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.asarray(high - low <= CONSTANT * np.maximum(1.0, np.maximum(np.abs(low), np.abs(high))))


@dataclass
class CameraRanges:
    """A parameterisation and the per-entry ranges its numbers are normalised by (saved in the checkpoint's JSON)."""

    kind: str
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, kind: str, numbers: np.ndarray) -> CameraRanges:
        """Ranges over the training cameras' numbers [N, k]; cosine and sine of SPHERICAL keep [−1, 1]; an entry that
        varies by no more than float rounding is stored as constant (low = high)."""
        values = np.atleast_2d(np.asarray(numbers, np.float64))
        if kind not in SIZES or values.shape[1] != SIZES[kind]:
            raise BadInput(f"{kind} cameras have {SIZES.get(kind, '?')} numbers, got {values.shape[1]}")
        low, high = values.min(axis=0), values.max(axis=0)
        if kind == SPHERICAL:
            low[:2], high[:2] = -1.0, 1.0
        fixed = _constant(low, high)
        high[fixed] = low[fixed]
        return cls(kind, low.tolist(), high.tolist())

    def constant(self) -> np.ndarray:
        """Which entries never varied in training (a checkpoint saved with a span of float rounding counts too)."""
        return _constant(np.asarray(self.low), np.asarray(self.high))

    def constant_names(self) -> list[str]:
        """What the constant entries are (the cosine and sine of a SPHERICAL azimuth always span [−1, 1])."""
        names = CAMERA_PARAMETERISATIONS[self.kind].entries
        return [names[i] for i in np.flatnonzero(self.constant())]

    def normalise(self, numbers: np.ndarray) -> np.ndarray:
        """(x − low)/(high − low)·2 − 1 per entry; a constant entry maps to 0 whatever x."""
        values = np.asarray(numbers, np.float64)
        low, span, fixed = np.asarray(self.low), np.asarray(self.high) - np.asarray(self.low), self.constant()
        return np.where(fixed, 0.0, (values - low) / np.where(fixed, 1.0, span) * 2 - 1)

    def outside(self, numbers: np.ndarray) -> float:
        """How far beyond [−1, 1] the normalised numbers of the entries that varied in training reach (0 inside the range)."""
        beyond = np.abs(self.normalise(numbers)) - 1.0
        return max(0.0, float(np.max(beyond, initial=0.0, where=~self.constant())))

    def unlearnt(self, numbers: np.ndarray) -> np.ndarray:
        """Which constant entries ``numbers`` [k] or [N, k] differ on from the one trained value (any camera): they are read as it."""
        values, low = np.atleast_2d(np.asarray(numbers, np.float64)), np.asarray(self.low)
        return np.asarray(self.constant() & (np.abs(values - low) > CONSTANT * np.maximum(1.0, np.abs(low))).any(axis=0))

    def warnings(self, numbers: np.ndarray, cameras: str = "A camera") -> list[str]:
        """What to tell of cameras [N, k] the view mapper was not trained for: how far outside the range the farthest
        lies, and each entry it saw only one value of that they differ on."""
        rows = np.atleast_2d(np.asarray(numbers, np.float64))
        worst = max(self.outside(n) for n in rows)
        said = [f"{cameras} lies {worst:.2f} normalised units outside the trained range: expect a weaker view"] if worst > TOLERANCE else []
        names = CAMERA_PARAMETERISATIONS[self.kind].entries
        said += [
            f"The view mapper saw one {names[i]} only ({self.low[i]:.4g}) in training: {cameras.lower()} at another is read as at that one"
            for i in np.flatnonzero(self.unlearnt(rows))
        ]
        return said
