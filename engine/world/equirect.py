"""Equirectangular conventions, in one place.

Pixel (i, j) of a W×H panorama has its centre at u = (j + ½)/W, v = (i + ½)/H.
Longitude φ = π(1 − 2u) is measured from +X toward +Y (the image centre looks
along +X, its left edge along −X, moving left turns toward +Y); latitude
θ = π(½ − v), top row up. Blender is Z-up, so a pixel's ray is
(cos θ cos φ, cos θ sin φ, sin θ).

This is exactly what Cycles' equirectangular camera renders when the camera
object has ``CAPTURE_ROTATION``: the tests hold the two to each other.
"""

from __future__ import annotations

import math

import numpy as np

#: One line for files that store panoramas (meta.json).
CONVENTION = "pixel centre u=(j+0.5)/W, v=(i+0.5)/H; longitude pi*(1-2u) from +X toward +Y; latitude pi*(0.5-v); Z up"

#: Euler XYZ rotation of a panoramic camera that renders this convention.
CAPTURE_ROTATION = (math.pi / 2, 0.0, -math.pi / 2)


def pixel_centres(count: int) -> np.ndarray:
    """Normalised centre coordinate of each of ``count`` pixels, in (0, 1)."""
    return (np.arange(count, dtype=np.float64) + 0.5) / count


def ray_directions(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unit rays for normalised image coordinates ``u`` (columns) and ``v`` (rows).

    ``u`` and ``v`` broadcast against each other; the result has a trailing axis of 3.
    """
    lon = np.pi * (1.0 - 2.0 * np.asarray(u, dtype=np.float64))
    lat = np.pi * (0.5 - np.asarray(v, dtype=np.float64))
    cos_lat = np.cos(lat)
    return np.stack(np.broadcast_arrays(cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)), axis=-1)
