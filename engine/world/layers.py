"""Layered worlds, the engine's first part: an RGBD panorama's foreground regions peeled into layers, and the background
behind them filled geometrically (issue 25; LDM3D inpainting comes next on the shared denoising loop).

- **Depth edges**: two neighbouring pixels (4-neighbours; longitude wraps for a 360° panorama) whose distances differ by
  more than the edge threshold (far/near − 1: the world sphere's ``discontinuity`` ratio) are not joined.
- **Regions**: what stays joined (:func:`regions`). The largest is the background's; a region nearer than what lies
  across most of its depth edges, and of at least the minimum size, is a **foreground region** (:func:`foreground`).
- **Layers** (:func:`peel`): the foreground regions, grown by the dilation (the mixed pixels along an edge belong to
  neither surface), are layer 1; the background is filled behind them (:func:`fill`), and the next layer is peeled
  from that, up to the number of layers asked for. Each foreground layer keeps its pixels with an alpha that is 1 on
  its regions and falls to 0 across the dilated border, so its edge is not cut like paper; across that border its
  distance is its regions' own, carried outward.
- **Geometric fill** (the offline default): the unknown pixels take, ring by ring from the region's border inward, the
  mean colour of their known neighbours and the farthest of their distances: the background pushed in, never the
  occluder's own surface. A filled distance is at least the occluder's times (1 + :data:`BEHIND`): what was clamped
  to that is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BadInput

#: A filled pixel lies at least this fraction farther than the occluder it replaces.
BEHIND = 0.05
#: Foreground may cover at most this share of the panorama: beyond it the "background" is what is hidden.
MAX_SHARE = 0.5


@dataclass
class Layer:
    rgb: np.ndarray  # H×W×3 float32
    distance: np.ndarray  # H×W float32: ray distances
    alpha: np.ndarray  # H×W float32 in [0, 1]: 1 where the layer is; the background's is 1 everywhere


@dataclass
class Layering:
    layers: list[Layer]  # the background first, then each foreground layer, farther before nearer
    regions: int  # foreground regions found
    clamped: float  # share of the filled pixels pushed behind their occluder


def _joined(distance: np.ndarray, threshold: float, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Whether each pixel is joined to its right neighbour (the last column to the first if ``wrap``) and to the one below."""
    right = np.roll(distance, -1, axis=1)
    across = np.maximum(distance, right) <= np.minimum(distance, right) * (1.0 + threshold)
    if not wrap:
        across[:, -1] = False
    below = np.maximum(distance[:-1], distance[1:]) <= np.minimum(distance[:-1], distance[1:]) * (1.0 + threshold)
    return across, below


def regions(distance: np.ndarray, threshold: float, wrap: bool = True) -> np.ndarray:
    """Each pixel's region (0, 1, …): the pixels joined to it through neighbours not separated by a depth edge."""
    height, width = distance.shape
    across, below = _joined(distance, threshold, wrap)
    from_left = np.roll(across, 1, axis=1)
    labels = np.arange(height * width, dtype=np.int64).reshape(height, width)
    while True:  # each pixel takes the smallest label among its joined neighbours, then its label's label (pointer jumping)
        new = np.where(across, np.minimum(labels, np.roll(labels, -1, axis=1)), labels)
        new = np.where(from_left, np.minimum(new, np.roll(new, 1, axis=1)), new)
        new[:-1] = np.where(below, np.minimum(new[:-1], new[1:]), new[:-1])
        new[1:] = np.where(below, np.minimum(new[1:], new[:-1]), new[1:])
        flat = new.ravel()
        new = flat[flat].reshape(height, width)
        if np.array_equal(new, labels):
            break
        labels = new
    return np.unique(labels, return_inverse=True)[1].reshape(height, width)


def foreground(distance: np.ndarray, threshold: float, min_pixels: int, wrap: bool = True) -> tuple[np.ndarray, int]:
    """The frontmost foreground regions' pixels, and how many: nearer than what lies across most of their depth edges,
    and not behind another such region."""
    labels = regions(distance, threshold, wrap)
    count = int(labels.max()) + 1
    across, below = _joined(distance, threshold, wrap)
    pairs = [
        (labels[~across], np.roll(labels, -1, axis=1)[~across], distance[~across], np.roll(distance, -1, axis=1)[~across]),
        (labels[:-1][~below], labels[1:][~below], distance[:-1][~below], distance[1:][~below]),
    ]
    nearer, edges = np.zeros(count), np.zeros(count)
    for a, b, da, db in pairs:
        np.add.at(nearer, np.where(da < db, a, b), 1)
        np.add.at(edges, a, 1)
        np.add.at(edges, b, 1)
    sizes = np.bincount(labels.ravel(), minlength=count)
    chosen = (nearer > edges / 2) & (sizes >= min_pixels) & (np.arange(count) != np.argmax(sizes))
    for a, b, da, db in pairs:  # one behind another: the front one now, the one behind it in the next layer
        both = chosen[a] & chosen[b]
        chosen[np.where(da < db, b, a)[both]] = False
    return chosen[labels], int(chosen.sum())


def _neighbours(values: np.ndarray, wrap: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """``values`` shifted from each of the four neighbours, with whether that neighbour exists (rows never wrap)."""
    height, width = values.shape[:2]
    exists = np.ones((height, width), bool)
    out = []
    for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
        there = exists.copy()
        if axis == 0:
            there[0 if shift == 1 else -1] = False
        elif not wrap:
            there[:, 0 if shift == 1 else -1] = False
        out.append((np.roll(values, shift, axis=axis), there))
    return out


def grow(mask: np.ndarray, pixels: int, wrap: bool = True) -> np.ndarray:
    """``mask`` grown by ``pixels`` in the four directions (longitude wraps)."""
    for _ in range(pixels):
        grown = mask.copy()
        for shifted, there in _neighbours(mask, wrap):
            grown |= shifted & there
        mask = grown
    return mask


def fill(rgb: np.ndarray, distance: np.ndarray, hole: np.ndarray, wrap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of ``hole`` filled ring by ring from its border: the known neighbours' mean colour, their farthest distance."""
    rgb, distance, known = rgb.copy(), distance.copy(), ~hole
    if not known.any():
        raise BadInput("Nothing around the hole to fill it from")
    while not known.all():
        colour_sum, count, farthest = np.zeros_like(rgb), np.zeros(distance.shape), np.zeros(distance.shape)
        for (c, _), (d, _), (k, there) in zip(_neighbours(rgb, wrap), _neighbours(distance, wrap), _neighbours(known, wrap)):
            use = k & there
            colour_sum += np.where(use[..., None], c, 0.0)
            count += use
            farthest = np.where(use, np.maximum(farthest, d), farthest)
        ring = ~known & (count > 0)
        rgb[ring] = colour_sum[ring] / count[ring, None]
        distance[ring] = farthest[ring]
        known = known | ring
    return rgb, distance


def peel(
    rgb: np.ndarray,
    distance: np.ndarray,
    layers: int = 2,
    threshold: float = 0.15,
    min_pixels: int = 16,
    dilation: int = 2,
    wrap: bool = True,
) -> Layering:
    """The panorama as a filled background and up to ``layers`` − 1 foreground layers (see the module's description)."""
    if layers < 1:
        raise BadInput(f"Layers must be at least 1, got {layers}")
    if rgb.shape[:2] != distance.shape:
        raise BadInput(f"The RGB ({rgb.shape[1]}×{rgb.shape[0]}) and the depth ({distance.shape[1]}×{distance.shape[0]}) differ in size")
    if not (np.all(np.isfinite(distance)) and np.all(distance > 0)):
        raise BadInput("Layers need every distance finite and above 0")
    rgb, distance = rgb.astype(np.float32), distance.astype(np.float32)
    peeled: list[Layer] = []
    found, filled, clamped = 0, 0, 0
    for _ in range(layers - 1):
        mask, count = foreground(distance, threshold, min_pixels, wrap)
        if not count:
            break
        hole = grow(mask, dilation, wrap)
        if hole.mean() > MAX_SHARE:
            raise BadInput(
                f"The foreground would cover {hole.mean():.0%} of the panorama (at most {MAX_SHARE:.0%}): "
                "raise the edge threshold or the minimum region size"
            )
        peeled.append(Layer(rgb.copy(), _extended(distance, mask, dilation, wrap), _feathered(mask, dilation, wrap)))
        background_rgb, background_distance = fill(rgb, np.where(hole, 0.0, distance), hole, wrap)
        floor = np.where(mask, distance * (1.0 + BEHIND), 0.0)  # behind the occluder (the grown border was background)
        behind = mask & (background_distance < floor)
        background_distance = np.where(behind, floor, background_distance)
        found, filled, clamped = found + count, filled + int(hole.sum()), clamped + int(behind.sum())
        rgb, distance = background_rgb.astype(np.float32), background_distance.astype(np.float32)
    background = Layer(rgb, distance, np.ones(distance.shape, np.float32))
    return Layering([background, *reversed(peeled)], found, clamped / filled if filled else 0.0)


def _extended(distance: np.ndarray, mask: np.ndarray, border: int, wrap: bool) -> np.ndarray:
    """The regions' distances, carried ``border`` pixels out past their edge (its mixed pixels there are the wall's or
    neither's): the faded border lies on the foreground's surface, not stretched back to the wall. 0 elsewhere."""
    out, known = np.where(mask, distance, 0.0).astype(np.float32), mask
    for _ in range(border):
        reach = np.zeros(distance.shape, np.float32)
        for (d, there), (k, _) in zip(_neighbours(out, wrap), _neighbours(known, wrap)):
            reach = np.where(k & there, np.maximum(reach, d), reach)
        ring = ~known & (reach > 0)
        out[ring], known = reach[ring], known | ring
    return out


def _feathered(mask: np.ndarray, border: int, wrap: bool) -> np.ndarray:
    """1 on ``mask``, falling linearly to 0 over ``border`` pixels outside it."""
    alpha, ring = mask.astype(np.float32), mask
    for step in range(1, border + 1):
        grown = grow(ring, 1, wrap)
        alpha[grown & ~ring] = 1.0 - step / (border + 1)
        ring = grown
    return alpha
