"""How far a viewpoint may move inside a world sphere before its reconstruction shows.

A world sphere is exact only from its centre. Moved by ``r``, the viewer sees
two kinds of damage: surfaces come too close (a wall ``d`` away shifts by up
to ``r/d`` radians), and at every depth edge the sheet between the near and the
far surface stretches into a band about ``r·(1/d_near − 1/d_far)`` radians
wide, where the panorama has no colour for what was hidden. The safe radius
keeps both small: a fraction of the nearest distance, and the radius at which
the widest common band reaches a limit. Percentiles are weighted by solid angle
(cos latitude), so the over-sampled pole rows and single noisy pixels do not
decide it.
"""

from __future__ import annotations

import math

import numpy as np

from . import equirect

#: Defaults: move at most a quarter of the way to the nearest surface, and open no depth-edge band wider than 5°.
NEAR_FRACTION = 0.25
MAX_BAND_DEG = 5.0
NEAR_PERCENTILE = 1.0  # the nearest 1% of the view (by solid angle) counts as "nearest"
EDGE_PERCENTILE = 99.5  # the widest 0.5% of neighbour jumps may exceed the band limit


def _weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    index = int(np.searchsorted(cumulative, cumulative[-1] * q / 100.0))
    return float(values[order][min(index, len(order) - 1)])


def safe_radius(
    distances: np.ndarray,
    near_fraction: float = NEAR_FRACTION,
    max_band_deg: float = MAX_BAND_DEG,
) -> float:
    """The safe radius, in scene units, for an equirectangular H×W map of ray distances."""
    dist = np.asarray(distances, np.float64)
    if dist.ndim != 2 or dist.shape[1] != 2 * dist.shape[0]:
        raise ValueError(f"expected a 2:1 equirectangular distance map, got shape {dist.shape}")
    if not np.all(np.isfinite(dist)) or dist.min() <= 0:
        raise ValueError("distances must be finite and positive")
    height = dist.shape[0]
    lat = (0.5 - equirect.pixel_centres(height)) * math.pi
    row_weight = np.cos(lat)[:, None]

    near = _weighted_percentile(dist.ravel(), np.broadcast_to(row_weight, dist.shape).ravel(), NEAR_PERCENTILE)
    by_nearness = near_fraction * near

    inverse = 1.0 / dist
    across = np.abs(inverse - np.roll(inverse, -1, axis=1))  # longitude wraps
    down = np.abs(inverse[1:] - inverse[:-1])
    jumps = np.concatenate([across.ravel(), down.ravel()])
    weights = np.concatenate([np.broadcast_to(row_weight, across.shape).ravel(), np.broadcast_to(row_weight[1:], down.shape).ravel()])
    widest = _weighted_percentile(jumps, weights, EDGE_PERCENTILE)
    by_bands = math.radians(max_band_deg) / widest if widest > 0 else math.inf
    return float(min(by_nearness, by_bands))


def stored_safe_radius(info: dict[str, float]) -> float:
    """A world sphere's safe radius from its stored figures; spheres built before it was stored: a fraction of the nearest distance."""
    return float(info.get("safe_radius") or NEAR_FRACTION * float(info.get("min_distance", 0.0)))


def rig_clip_range(safe_radius: float, max_distance: float) -> tuple[float, float]:
    """A rig camera's clipping inside a sphere: near enough for the whole safe radius, far beyond the farthest point."""
    start = min(0.01, safe_radius / 10) if safe_radius > 0 else 0.01
    return start, max(1000.0, 10 * max_distance)
