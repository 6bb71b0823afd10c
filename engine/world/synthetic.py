"""A synthetic RGBD panorama with known geometry: a box room seen from 1.6 m above its floor, for tests and benchmarks
(its distances are exact, continuous at the room's corners, and its colours smooth)."""

from __future__ import annotations

import numpy as np

from . import equirect

EYE = (0.0, 0.0, 1.6)
ROOM = ((-4.0, -3.0, 0.0), (4.0, 3.0, 3.0))  # the room's lowest and highest corners, metres


def box_room(width: int, height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The room as a ``width`` × ``height`` (default: half the width) equirectangular panorama: (H×W×3 colours in
    [0.1, 0.9], H×W ray distances from :data:`EYE`)."""
    height = height or width // 2
    rays = equirect.ray_directions(equirect.pixel_centres(width)[None, :], equirect.pixel_centres(height)[:, None])
    eye, (low, high) = np.array(EYE), (np.array(corner) for corner in ROOM)
    with np.errstate(divide="ignore"):
        walls = np.where(rays > 0, (high - eye) / rays, (low - eye) / rays)
    distance = np.min(np.where(np.isfinite(walls) & (walls > 0), walls, np.inf), axis=-1)
    rgb = 0.5 + 0.4 * np.stack([np.sin(3 * rays[..., 0]), np.cos(2 * rays[..., 1]), rays[..., 2]], axis=-1)
    return rgb.astype(np.float32), distance.astype(np.float32)
