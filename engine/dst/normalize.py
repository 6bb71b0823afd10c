"""The object frame 3D-DST renders in: the CAD model centred and scaled to unit size.

normalized = (p + offset) * scale, with offset = −(bbox centre) and
scale = 1 / (largest bbox extent): the bbox centre goes to the origin and the
longest side becomes 1, as in 3D-DST.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import BadInput

#: Names of the 8 bbox corners, in :func:`box_corners` order: digits are x, y, z; 0 = min, 1 = max.
CORNER_NAMES: tuple[str, ...] = tuple(f"bbox_{x}{y}{z}" for x, y, z in itertools.product((0, 1), repeat=3))


def normalization(bbox_min: np.ndarray, bbox_max: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, offset) such that normalized = (p + offset) * scale."""
    lo, hi = np.asarray(bbox_min, np.float64).reshape(3), np.asarray(bbox_max, np.float64).reshape(3)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()) or (hi < lo).any():
        raise BadInput(f"Bad bounding box: min {lo.tolist()} max {hi.tolist()}")
    extent = float((hi - lo).max())
    if extent <= 0:
        raise BadInput("The object's bounding box has no size: nothing to normalise")
    return 1.0 / extent, -(lo + hi) / 2


def normalize_points(points: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    return (np.asarray(points, np.float64) + offset) * scale


def box_corners(bbox_min: np.ndarray, bbox_max: np.ndarray) -> np.ndarray:
    """The 8 corners (8×3) in :data:`CORNER_NAMES` order: corner i takes max along x if i & 4, y if i & 2, z if i & 1."""
    lo, hi = np.asarray(bbox_min, np.float64).reshape(3), np.asarray(bbox_max, np.float64).reshape(3)
    return np.array([[(lo, hi)[x][0], (lo, hi)[y][1], (lo, hi)[z][2]] for x, y, z in itertools.product((0, 1), repeat=3)])


def keypoint_centres(points: np.ndarray, weights: np.ndarray, names: list[str]) -> dict[str, list[float]]:
    """Each named vertex group's weighted centre.

    ``points`` is N×3, ``weights`` N×G (a vertex outside a group weighs 0 in
    it), ``names`` the G group names. A group with no weight has no centre and
    is left out.
    """
    points, weights = np.asarray(points, np.float64).reshape(-1, 3), np.asarray(weights, np.float64).reshape(len(points), -1)
    if weights.shape[1] != len(names):
        raise BadInput(f"{len(names)} keypoint names for {weights.shape[1]} weight columns")
    weights = np.where(weights > 0, weights, 0.0)
    totals = weights.sum(axis=0)
    centres = (weights.T @ points) / np.where(totals > 0, totals, 1.0)[:, None]
    return {name: centres[g].tolist() for g, name in enumerate(names) if totals[g] > 0}


def to_world(points: np.ndarray, matrix_world: np.ndarray) -> np.ndarray:
    """N×3 object-space points through a 4×4 object-to-world matrix."""
    matrix = np.asarray(matrix_world, np.float64)
    return np.asarray(points, np.float64).reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
