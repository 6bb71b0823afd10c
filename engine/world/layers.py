"""Layered worlds: an RGBD panorama's foreground peeled into layers at its depth edges, and the
background behind them filled geometrically, or painted over that by LDM3D (:mod:`.inpaint`).

- **Depth edges** (:func:`_edges`): two neighbouring pixels (4-neighbours; longitude wraps for a 360° panorama) whose
  distances differ by more than the edge threshold (far/near − 1) and :data:`SLOPE` times the steps beside them (a
  floor seen toward the horizon is a slope, not an edge).
- **Foreground** (:func:`foreground`): the nearer side of every edge, as deep as a viewer stepping the walk radius
  from the centre can see behind it (:func:`band_width`: the parallax ``reach · (1/near − 1/far)``), spreading only
  along the nearer surface (never across an edge) and only while it is in front of the farther surface, whose
  distance and colour it carries in behind it. An object standing on the floor is found as well as one that floats.
- **Layers** (:func:`peel`): a foreground region in front of the background is layer 1; one in front of a layer-k
  region is layer k + 1 (up to the number asked for), each farther layer carried on under the nearer ones. Each
  layer's alpha is 1 on its pixels and falls to 0 across the border (``dilation`` pixels), on its own surface, so
  its edge is not cut like paper.
- **Background**: the farther surface carried in under the foreground; what lies under nearer layers filled ring by
  ring from around (:func:`fill`: the farthest neighbours' distance and their colours); a painter (LDM3D inpainting)
  paints the whole hole over that. Around the foreground the background keeps its own pixels, onto which the layers'
  borders fade. It never lies in front of its occluder: within
  (1 + :data:`BEHIND`) of it, it is pushed back to that, and the share is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import BadInput

#: (background RGB, its distances, the hole behind the foreground) → the two with the hole painted
Painter = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: Neighbours whose distances differ by more than this fraction can be a depth edge: in ``bench/bench_walkable.py`` the
#: demo room seen 0.5 m off its capture point shows 0.72% stretched pixels at 0.08 (2.13% as one sphere)
EDGE_THRESHOLD = 0.08
#: A filled pixel lies at least this fraction farther than the occluder it replaces.
BEHIND = 0.05
#: A depth edge's step is at least this many times the steps beside it (else it is a slope).
SLOPE = 3.0
#: Neighbours within this fraction of the farthest one's distance lie on its surface (their colours fill).
SAME_SURFACE = 0.05
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


def _edges(distance: np.ndarray, threshold: float, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Depth edges between each pixel and its right neighbour (the last column's and the first's if ``wrap``) and
    between it and the one below: a step over the threshold (far/near − 1) and :data:`SLOPE` times the steps on either
    side of it, so a surface seen at a grazing angle (a floor toward the horizon) is a slope, not an edge."""
    log = np.log(distance.astype(np.float64))
    right = np.abs(np.roll(log, -1, axis=1) - log)
    down = np.abs(log[1:] - log[:-1])
    limit = np.log1p(threshold)
    across = (right > limit) & (right > SLOPE * np.maximum(np.roll(right, 1, axis=1), np.roll(right, -1, axis=1)))
    if not wrap:
        across[:, -1] = False  # no pair there
    padded = np.pad(down, ((1, 1), (0, 0)))
    below = (down > limit) & (down > SLOPE * np.maximum(padded[:-2], padded[2:]))
    return across, below


def _joined(distance: np.ndarray, threshold: float, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Whether each pixel is joined to its right neighbour and to the one below: neighbours with no depth edge between."""
    across, below = _edges(distance, threshold, wrap)
    joined = ~across
    if not wrap:
        joined[:, -1] = False
    return joined, ~below


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


@dataclass
class EdgePairs:
    """Every pair of neighbours across a depth edge: the nearer pixel and the farther one, and their distances."""

    near: tuple[np.ndarray, np.ndarray]  # rows, columns
    far: tuple[np.ndarray, np.ndarray]
    near_distance: np.ndarray
    far_distance: np.ndarray


def _edge_pairs(distance: np.ndarray, threshold: float, wrap: bool) -> EdgePairs:
    width = distance.shape[1]
    across, below = _edges(distance, threshold, wrap)
    rows, cols = np.nonzero(across)
    up, down = np.nonzero(below)
    r1, c1 = np.concatenate([rows, up]), np.concatenate([cols, down])
    r2, c2 = np.concatenate([rows, up + 1]), np.concatenate([(cols + 1) % width, down])
    d1, d2 = distance[r1, c1], distance[r2, c2]
    first = d1 < d2
    return EdgePairs(
        (np.where(first, r1, r2), np.where(first, c1, c2)),
        (np.where(first, r2, r1), np.where(first, c2, c1)),
        np.minimum(d1, d2),
        np.maximum(d1, d2),
    )


def band_width(distance: np.ndarray, threshold: float, reach: float, wrap: bool = True) -> int:
    """How many pixels in from an edge a viewer ``reach`` metres from the centre can see behind the nearer side: the
    parallax of its nearest and farthest surfaces, ``reach · (1/near − 1/far)`` radians, at the panorama's pixel size."""
    pairs = _edge_pairs(distance, threshold, wrap)
    near, far = pairs.near_distance, pairs.far_distance
    if near.size == 0:
        return 0
    radians = float(np.percentile(reach * (1.0 / near - 1.0 / far), 95))  # a few stray pixels do not set the width
    return int(np.clip(np.ceil(radians * distance.shape[1] / (2 * np.pi)), 1, distance.shape[1] // 8))


@dataclass
class Foreground:
    mask: np.ndarray  # H×W bool
    regions: int  # how many regions (cut at depth edges)
    behind: np.ndarray  # H×W distances of the farther surface carried in under the mask (0 off it)
    behind_rgb: np.ndarray  # H×W×3 its colours


def foreground(
    distance: np.ndarray, threshold: float, min_pixels: int, band: int, wrap: bool = True, rgb: np.ndarray | None = None
) -> Foreground:
    """The foreground: the nearer side of every depth edge, ``band`` pixels deep, as far in as it stays in front of the
    farther surface carried in behind it (its distance and colour, ``rgb``'s); regions under ``min_pixels`` dropped."""
    colours = np.zeros((*distance.shape, 3), np.float32) if rgb is None else rgb.astype(np.float32)
    behind, behind_rgb = np.zeros(distance.shape, np.float32), np.zeros_like(colours)
    pairs = _edge_pairs(distance, threshold, wrap)
    order = np.argsort(pairs.far_distance, kind="stable")  # the farthest surface behind a pixel is the one written last
    near, far = (pairs.near[0][order], pairs.near[1][order]), (pairs.far[0][order], pairs.far[1][order])
    behind[near], behind_rgb[near] = pairs.far_distance[order], colours[far]
    mask = behind > 0
    links = _links(*_joined(distance, threshold, wrap))
    for _ in range(band - 1):  # along the nearer surface only (never across an edge), while it is in front of the farther one
        reach, reach_rgb = np.zeros(distance.shape, np.float32), np.zeros_like(colours)
        shifted = zip(_neighbours(behind, wrap), _neighbours(behind_rgb, wrap), _neighbours(mask, wrap), links)
        for (b, there), (c, _), (m, _), joined in shifted:
            better = m & there & joined & (b > reach)
            reach, reach_rgb = np.where(better, b, reach), np.where(better[..., None], c, reach_rgb)
        ring = ~mask & (distance * (1.0 + threshold) < reach)
        behind[ring], behind_rgb[ring], mask = reach[ring], reach_rgb[ring], mask | ring
    labels = regions(np.where(mask, distance, 1e9), threshold, wrap)  # the foreground's regions, cut at its edges
    sizes = np.bincount(labels.ravel())
    kept = mask & (sizes[labels] >= min_pixels)
    return Foreground(kept, len(np.unique(labels[kept])), np.where(kept, behind, 0.0), np.where(kept[..., None], behind_rgb, 0.0))


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


def _links(across: np.ndarray, below: np.ndarray) -> list[np.ndarray]:
    """Whether each pixel is joined to the neighbour each of :func:`_neighbours`' shifts brings: above, below, left, right."""
    false_row = np.zeros((1, across.shape[1]), bool)
    return [np.vstack([false_row, below]), np.vstack([below, false_row]), np.roll(across, 1, axis=1), across]


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
        shifted = list(zip(_neighbours(rgb, wrap), _neighbours(distance, wrap), _neighbours(known, wrap)))
        farthest = np.zeros(distance.shape)
        for _, (d, _), (k, there) in shifted:
            farthest = np.where(k & there, np.maximum(farthest, d), farthest)
        colour_sum, count = np.zeros_like(rgb), np.zeros(distance.shape)
        for (c, _), (d, _), (k, there) in shifted:  # the colours of the farthest surface only, not the occluder's
            use = k & there & (d * (1.0 + SAME_SURFACE) >= farthest)
            colour_sum += np.where(use[..., None], c, 0.0)
            count += use
        ring = ~known & (count > 0)
        rgb[ring] = colour_sum[ring] / count[ring, None]
        distance[ring] = farthest[ring]
        known = known | ring
    return rgb, distance


def peel(
    rgb: np.ndarray,
    distance: np.ndarray,
    layers: int = 2,
    threshold: float = EDGE_THRESHOLD,
    min_pixels: int = 16,
    dilation: int = 2,
    reach: float = 0.5,
    wrap: bool = True,
    painter: Painter | None = None,
) -> Layering:
    """The panorama as a filled background and up to ``layers`` − 1 foreground layers (see the module's description);
    ``painter`` paints the background's hole over the geometric fill (:mod:`.inpaint`)."""
    if layers < 1:
        raise BadInput(f"Layers must be at least 1, got {layers}")
    if rgb.shape[:2] != distance.shape:
        raise BadInput(f"The RGB ({rgb.shape[1]}×{rgb.shape[0]}) and the depth ({distance.shape[1]}×{distance.shape[0]}) differ in size")
    if not (np.all(np.isfinite(distance)) and np.all(distance > 0)):
        raise BadInput("Layers need every distance finite and above 0")
    rgb, distance = rgb.astype(np.float32), distance.astype(np.float32)
    found = foreground(distance, threshold, min_pixels, band_width(distance, threshold, reach, wrap), wrap, rgb) if layers > 1 else None
    if found is None or not found.regions:
        return Layering([Layer(rgb, distance, np.ones(distance.shape, np.float32))], 0, 0.0)
    mask = found.mask
    if mask.mean() > MAX_SHARE:
        raise BadInput(
            f"The foreground would cover {mask.mean():.0%} of the panorama (at most {MAX_SHARE:.0%}): "
            "raise the edge threshold or the minimum region size"
        )
    levels = _levels(distance, mask, threshold, layers - 1, wrap)
    peeled = []
    for level in range(1, int(levels.max()) + 1):  # farther first; each carried on under the nearer ones
        own, nearer = levels == level, levels > level
        layer_rgb, layer_distance = fill(rgb, np.where(nearer, 0.0, distance), nearer, wrap) if nearer.any() else (rgb, distance)
        kept = own | nearer
        peeled.append(Layer(layer_rgb.copy(), _extended(layer_distance, kept, dilation, wrap), _feathered(kept, dilation, wrap)))
    # The background: the farther surface carried in under the front layer, what lies under nearer ones filled from
    # around it; around the foreground, its own pixels, which the layers' borders fade onto (bench_walkable: 36.25 dB
    # at 0.5 m, against 35.80 dB with that border filled too and 36.07 dB as one sphere)
    first = levels == 1
    background_rgb = np.where(first[..., None], found.behind_rgb, rgb).astype(np.float32)
    background_distance = np.where(first, found.behind, distance).astype(np.float32)
    rest = mask & ~first
    if rest.any():
        background_rgb, background_distance = fill(background_rgb, np.where(rest, 0.0, background_distance), rest, wrap)
    if painter is not None:  # the geometric fill is its start, and stays where the painter keeps it
        background_rgb, background_distance = painter(background_rgb, background_distance, mask)
    floor = np.where(mask, distance * (1.0 + BEHIND), 0.0)  # behind the occluder
    behind = mask & (background_distance < floor)
    background_distance = np.where(behind, floor, background_distance).astype(np.float32)
    background = Layer(background_rgb.astype(np.float32), background_distance, np.ones(distance.shape, np.float32))
    return Layering([background, *peeled], found.regions, float(behind.sum()) / float(mask.sum()))


def _levels(distance: np.ndarray, mask: np.ndarray, threshold: float, most: int, wrap: bool) -> np.ndarray:
    """Each foreground pixel's layer (1, 2, …, ``most``; 0 off the foreground): one more than the foreground region it
    stands in front of across its edges, 1 in front of the background only."""
    labels = regions(np.where(mask, distance, 1e9), threshold, wrap)  # the foreground's regions, cut at its edges
    level = np.zeros(int(labels.max()) + 1, np.int64)
    level[np.unique(labels[mask])] = 1
    pairs = _edge_pairs(distance, threshold, wrap)
    both = mask[pairs.near] & mask[pairs.far]
    near, far = labels[pairs.near][both], labels[pairs.far][both]
    for _ in range(most):
        before = level.copy()
        np.maximum.at(level, near, level[far] + 1)
        if np.array_equal(level, before):
            break
    return np.minimum(level[labels], most) * mask


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
