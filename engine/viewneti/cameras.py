"""A camera as the view mapper reads it: numbers, normalised to about [−1, 1] by ranges stored with the checkpoint.

Two parameterisations:

* ``DTU12``: the 12 numbers of the 3×4 projection matrix P = K [R | t] (OpenCV
  camera axes: x right, y down, looking along +z), row-major — the original's
  DTU form, so its protocol and checkpoints carry over.
* ``SPHERICAL``: about a target, (cos azimuth, sin azimuth, elevation in
  degrees, distance). Azimuth 0 looks from −Y, 90 from +X (as the multi-view
  cameras); cosine and sine keep a full orbit continuous.

Each entry is min–max scaled to [−1, 1] over the training cameras, and the
ranges are saved with the checkpoint (the original recomputed them from its
calibration files). A camera outside the trained range still maps; how far
outside, in normalised units, is what a warning reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..cameras import extrinsics
from ..choices import CAMERA_PARAMETERISATIONS
from ..errors import BadInput

SPHERICAL, DTU12 = CAMERA_PARAMETERISATIONS.ids
SIZES = {DTU12: 12, SPHERICAL: 4}


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


@dataclass
class CameraRanges:
    """A parameterisation and the per-entry ranges its numbers are normalised by (saved in the checkpoint's JSON)."""

    kind: str
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, kind: str, numbers: np.ndarray) -> CameraRanges:
        """Ranges over the training cameras' numbers [N, k]; cosine and sine of SPHERICAL keep [−1, 1]."""
        values = np.atleast_2d(np.asarray(numbers, np.float64))
        if kind not in SIZES or values.shape[1] != SIZES[kind]:
            raise BadInput(f"{kind} cameras have {SIZES.get(kind, '?')} numbers, got {values.shape[1]}")
        low, high = values.min(axis=0), values.max(axis=0)
        if kind == SPHERICAL:
            low[:2], high[:2] = -1.0, 1.0
        return cls(kind, low.tolist(), high.tolist())

    def normalise(self, numbers: np.ndarray) -> np.ndarray:
        """(x − low)/(high − low)·2 − 1 per entry; an entry that never varied in training maps to 0."""
        values = np.asarray(numbers, np.float64)
        low, high = np.asarray(self.low), np.asarray(self.high)
        span = high - low
        return np.where(span > 0, (values - low) / np.where(span > 0, span, 1.0) * 2 - 1, 0.0)

    def outside(self, numbers: np.ndarray) -> float:
        """How far beyond [−1, 1] the normalised numbers reach (0 inside the trained range).

        An entry that never varied in training (every camera at one elevation, say)
        counts its difference relative to the trained value instead.
        """
        values = np.asarray(numbers, np.float64)
        low, high = np.asarray(self.low), np.asarray(self.high)
        fixed = high - low <= 0
        beyond = np.abs(self.normalise(values)) - 1.0
        beyond[fixed] = np.abs(values - low)[fixed] / np.maximum(np.abs(low[fixed]), 1.0)
        return max(0.0, float(np.max(beyond)))
