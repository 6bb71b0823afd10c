"""OpenCV's Canny edge detector in numpy, pixel for pixel.

3D-DST's control images are ``cv2.Canny(image, 100, 200, apertureSize=3)``, but
Blender's Python has no cv2. This follows OpenCV's integer pipeline: Sobel
derivatives with replicated borders; on colour images, each pixel takes the
channel of largest magnitude (the first on ties); L1 magnitude |dx| + |dy|
(or dx² + dy² against squared thresholds); non-maximum suppression in four
directions using OpenCV's fixed-point tan 22.5°/67.5° sectors, strict toward
one neighbour and non-strict toward the other; magnitudes above ⌊low⌋ are
candidates and above ⌊high⌋ seeds; seeds grow through 8-connected candidates.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInput

_SMOOTH = {3: (1, 2, 1), 5: (1, 4, 6, 4, 1)}
_DERIV = {3: (-1, 0, 1), 5: (-1, -2, 0, 2, 1)}
_SHIFT = 15
_TG22 = int(0.4142135623730950488016887242097 * (1 << _SHIFT) + 0.5)


def _correlate(img: np.ndarray, kernel: tuple[int, ...], axis: int) -> np.ndarray:
    """1-D correlation along ``axis`` with replicated borders (int64)."""
    half = len(kernel) // 2
    pad = [(0, 0)] * img.ndim
    pad[axis] = (half, half)
    padded = np.pad(img, pad, mode="edge")
    n = img.shape[axis]
    out = np.zeros(img.shape, np.int64)
    for k, weight in enumerate(kernel):
        if weight:
            out += weight * np.take(padded, np.arange(k, k + n), axis=axis)
    return out


def sobel(image: np.ndarray, aperture: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dy) of an H×W(×C) image as OpenCV's Sobel with BORDER_REPLICATE computes them (int64)."""
    if aperture not in _SMOOTH:
        raise BadInput(f"Canny aperture must be 3 or 5, got {aperture}")
    img = np.asarray(image).astype(np.int64)
    dx = _correlate(_correlate(img, _SMOOTH[aperture], 0), _DERIV[aperture], 1)
    dy = _correlate(_correlate(img, _SMOOTH[aperture], 1), _DERIV[aperture], 0)
    return dx, dy


def canny(image: np.ndarray, low: float = 100, high: float = 200, aperture: int = 3, l2_gradient: bool = False) -> np.ndarray:
    """uint8 H×W edge map (0/255) of a uint8 H×W or H×W×C image, as ``cv2.Canny`` gives it."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or min(img.shape[:2]) == 0:
        raise BadInput(f"Canny takes a uint8 H×W or H×W×C image, got {img.dtype} {img.shape}")
    if low > high:
        low, high = high, low
    dx, dy = sobel(img, aperture)
    if l2_gradient:
        mag = dx * dx + dy * dy
        low = min(32767.0, low) ** 2 if low > 0 else low
        high = min(32767.0, high) ** 2 if high > 0 else high
    else:
        mag = np.abs(dx) + np.abs(dy)
    if img.ndim == 3:  # the channel with the largest magnitude, the first one on ties
        pick = np.argmax(mag, axis=2)[..., None]
        mag, dx, dy = (np.take_along_axis(a, pick, axis=2)[..., 0] for a in (mag, dx, dy))
    low_i, high_i = math.floor(low), math.floor(high)
    candidate = _suppress_non_maxima(mag, dx, dy) & (mag > low_i)
    return np.where(_hysteresis(candidate, candidate & (mag > high_i)), 255, 0).astype(np.uint8)


def _suppress_non_maxima(mag: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    h, w = mag.shape
    p = np.zeros((h + 2, w + 2), mag.dtype)  # neighbours outside the image have magnitude 0
    p[1:-1, 1:-1] = mag

    def at(dr: int, dc: np.ndarray | int) -> np.ndarray:
        rows = np.arange(h)[:, None] + 1 + dr
        cols = np.arange(w)[None, :] + 1 + dc
        return p[rows, cols]

    x = np.abs(dx)
    y = np.abs(dy) << _SHIFT
    tg22x = x * _TG22
    tg67x = tg22x + (x << (_SHIFT + 1))
    horizontal = y < tg22x
    vertical = ~horizontal & (y > tg67x)
    diagonal = ~horizontal & ~vertical
    s = np.where((dx < 0) != (dy < 0), -1, 1)
    keep = horizontal & (mag > at(0, -1)) & (mag >= at(0, 1))
    keep |= vertical & (mag > at(-1, 0)) & (mag >= at(1, 0))
    keep |= diagonal & (mag > at(-1, -s)) & (mag > at(1, s))
    return keep


def _hysteresis(candidate: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Candidates 8-connected to a seed, grown breadth-first over the frontier only."""
    h, w = candidate.shape
    stride = w + 2
    cand = np.zeros((h + 2, w + 2), bool)
    cand[1:-1, 1:-1] = candidate
    cand = cand.ravel()
    edge = np.zeros_like(cand)
    seed_pad = np.zeros((h + 2, w + 2), bool)
    seed_pad[1:-1, 1:-1] = seeds
    frontier = np.flatnonzero(seed_pad)
    edge[frontier] = True
    steps = np.array([-stride - 1, -stride, -stride + 1, -1, 1, stride - 1, stride, stride + 1])
    while frontier.size:
        near = (frontier[:, None] + steps).ravel()
        near = near[cand[near] & ~edge[near]]
        frontier = np.unique(near)
        edge[frontier] = True
    return edge.reshape(h + 2, w + 2)[1:-1, 1:-1]
