"""Edge maps for the ControlNet control image, and how two edge maps compare.

Two kinds: 3D-DST's Canny on the rendered colours (:func:`canny_input` then
:func:`canny`), and exact geometric edges from the render passes (silhouette,
depth discontinuities, normal creases), which do not depend on shading.

Canny input: the straight-alpha RGBA render composited over black, as B, G, R
channels. 3D-DST ran ``cv2.Canny`` on ``cv2.imread(render.png)``, which drops
alpha and keeps B, G, R; Blender stores transparent pixels as black, so this is
the same image there, and over black the anti-aliased silhouette fades out
instead of keeping un-premultiplied colours. cv2.Canny on three channels takes,
per pixel, the channel with the strongest gradient (B first on ties), so the
order is kept too.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadInput
from .canny import canny
from .masks import ALPHA_THRESHOLD

__all__ = ["canny", "canny_input", "geometric_edges", "edge_fscore", "surface_slope", "unit_normals", "MISS_DEPTH", "SLOPE_MARGIN"]

#: Cycles writes about 1e10 where a ray hits nothing.
MISS_DEPTH = 1e9
DEPTH_JUMP = 0.03  # relative: neighbours whose depths differ by more than 3 % of the nearer
SLOPE_MARGIN = 3.0  # × a slanted surface's own depth change over a pixel, allowed on top
CREASE_DEG = 35.0


def canny_input(rgba: np.ndarray, background: int = 0) -> np.ndarray:
    """H×W×3 uint8 B, G, R of a straight-alpha RGBA (or RGB) render composited over a gray level."""
    img = np.asarray(rgba)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (3, 4):
        raise BadInput(f"Expected an 8-bit RGB or RGBA image, got {img.dtype} {img.shape}")
    rgb = img[..., :3].astype(np.int32)
    if img.shape[2] == 4:
        a = img[..., 3:4].astype(np.int32)
        rgb = (rgb * a + int(background) * (255 - a) + 127) // 255
    return np.ascontiguousarray(rgb[..., ::-1]).astype(np.uint8)


def _pairs(a: np.ndarray, dr: int, dc: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """Index pairs (p, p + (dr, dc)) that both lie inside an array shaped like ``a``."""
    h, w = a.shape[:2]
    rows_p = slice(max(0, -dr), h - max(0, dr))
    rows_q = slice(max(0, dr), h - max(0, -dr))
    cols_p = slice(max(0, -dc), w - max(0, dc))
    cols_q = slice(max(0, dc), w - max(0, -dc))
    return (rows_p, cols_p), (rows_q, cols_q)


def _shifted(a: np.ndarray, dr: int, dc: int, fill: float | bool) -> np.ndarray:
    """out[p] = a[p + (dr, dc)], ``fill`` outside."""
    out = np.full(a.shape, fill, dtype=a.dtype)
    p, q = _pairs(a, dr, dc)
    out[p] = a[q]
    return out


def geometric_edges(
    depth: np.ndarray,
    normals: np.ndarray,
    alpha: np.ndarray,
    depth_jump: float = DEPTH_JUMP,
    crease_deg: float = CREASE_DEG,
    alpha_threshold: float = ALPHA_THRESHOLD,
    k: np.ndarray | None = None,
    r: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 H×W (0/255) edges from planar depth, world normals and alpha, about 1 px wide.

    - silhouette: object pixels (alpha > threshold) with a 4-neighbour outside the object;
    - occluding contours: of two 4-neighbouring object pixels whose depths differ by more
      than ``depth_jump`` × the nearer depth, the nearer one (like the silhouette, the
      line lies on the occluding surface). Given the camera (K and world-to-camera R),
      the change a slanted surface makes over a pixel (×3: the step between pixels
      plus the sub-pixel position of Cycles' one depth sample) is allowed on top, so
      faces seen at a grazing angle do not fill up with lines; where that hides a
      contour, the normals on either side usually still draw it;
    - creases: where the normals on either side of a pixel (p − d, p + d, over the four
      directions) differ by more than ``crease_deg`` on a continuous surface, kept only
      at the maximum along the strongest direction (so anti-aliased normals give one line).
    """
    d = np.asarray(depth, np.float64)
    n = np.asarray(normals, np.float64)
    a = np.asarray(alpha, np.float64)
    if d.ndim != 2 or a.shape != d.shape or n.shape != d.shape + (3,):
        raise BadInput(f"Depth {d.shape}, normals {n.shape} and alpha {a.shape} must be H×W, H×W×3 and H×W")
    mask = a > alpha_threshold
    hit = mask & np.isfinite(d) & (d > 0) & (d < MISS_DEPTH)
    inside = mask.copy()
    for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        inside &= _shifted(mask, dr, dc, True)  # the image border does not make a silhouette
    edges = mask & ~inside

    unit = unit_normals(n)
    dd = np.where(hit, d, np.inf)
    slope = surface_slope(unit, k, r)
    continuous = {}
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        p, q = _pairs(dd, dr, dc)
        both = hit[p] & hit[q]
        near = np.minimum(dd[p], dd[q])
        allowed = depth_jump + SLOPE_MARGIN * np.maximum(slope[p], slope[q])
        with np.errstate(invalid="ignore"):  # ∞ − ∞ off the object, masked by ``both``
            jump = both & (np.abs(dd[p] - dd[q]) > allowed * near)
        smooth = np.zeros(d.shape, bool)
        smooth[p] = both & ~jump  # smooth[p]: p and p + (dr, dc) lie on one surface
        continuous[(dr, dc)] = smooth
        if abs(dr) + abs(dc) == 1:
            edges[p] |= jump & (dd[p] <= dd[q])
            edges[q] |= jump & (dd[q] < dd[p])

    strengths = []
    for (dr, dc), smooth in continuous.items():
        before, after = _shifted(unit, -dr, -dc, 0.0), _shifted(unit, dr, dc, 0.0)
        ok = smooth & _shifted(smooth, -dr, -dc, False)  # p − d ~ p and p ~ p + d
        strengths.append(np.where(ok, 1.0 - np.sum(before * after, axis=2), 0.0))
    stack = np.stack(strengths)  # 1 − cos(angle across p), per direction
    best = np.argmax(stack, axis=0)
    strength = np.take_along_axis(stack, best[None], axis=0)[0]
    is_max = np.zeros(d.shape, bool)
    for index, (dr, dc) in enumerate(continuous):
        along = stack[index]
        is_max |= (best == index) & (along >= _shifted(along, -dr, -dc, 0.0)) & (along > _shifted(along, dr, dc, 0.0))
    edges |= is_max & (strength > 1.0 - math.cos(math.radians(crease_deg)))
    return np.where(edges, 255, 0).astype(np.uint8)


def unit_normals(normals: np.ndarray) -> np.ndarray:
    """Normals scaled to length 1 (anti-aliased ones are shorter); 0 where there is none."""
    n = np.asarray(normals, np.float64)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(length > 1e-6, n / np.maximum(length, 1e-12), 0.0)


def surface_slope(unit: np.ndarray, k: np.ndarray | None, r: np.ndarray | None) -> np.ndarray:
    """Relative depth change |Δz|/z a plane with these normals makes over one pixel across plus one down.

    Planar depth on a plane n·X = c along the pixel ray d(u, v) = ((u − cx)/fx, (v − cy)/fy, 1)
    is z = c / (n·d), so a step (du, dv) changes it by the ratio |n·Δd| / |n·d| with
    Δd = (du/fx, dv/fy, 0). Summing both directions covers a depth sample that sits
    anywhere in its pixel, not only the step between the two pixel centres.
    """
    h, w = unit.shape[:2]
    if k is None or r is None:
        return np.zeros((h, w))
    kk = np.asarray(k, np.float64)
    n_cam = unit @ np.asarray(r, np.float64).T
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    along_ray = n_cam[..., 0] * (cols - kk[0, 2]) / kk[0, 0] + n_cam[..., 1] * (rows - kk[1, 2]) / kk[1, 1] + n_cam[..., 2]
    across = np.abs(n_cam[..., 0]) / kk[0, 0] + np.abs(n_cam[..., 1]) / kk[1, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.abs(along_ray) > 1e-9, across / np.abs(along_ray), np.inf)


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    r = int(math.floor(radius))
    out = mask.copy()
    for dr in range(-r, r + 1):
        for dc in range(-r, r + 1):
            if (dr or dc) and dr * dr + dc * dc <= radius * radius:
                out |= _shifted(mask, dr, dc, False)
    return out


def edge_fscore(pred: np.ndarray, ref: np.ndarray, tolerance_px: float = 2) -> tuple[float, float, float]:
    """(precision, recall, F) of edge maps (nonzero = edge), matching within a Euclidean distance.

    Precision: share of predicted edge pixels within ``tolerance_px`` of a reference
    edge pixel; recall the other way round (a tolerance band, not a one-to-one
    matching). An empty map scores 1 on its own side, so two empty maps score 1.
    """
    p, r = np.asarray(pred) > 0, np.asarray(ref) > 0
    if p.shape != r.shape:
        raise BadInput(f"Edge maps differ in size: {p.shape} and {r.shape}")
    precision = float((p & _dilate(r, tolerance_px)).sum() / p.sum()) if p.any() else 1.0
    recall = float((r & _dilate(p, tolerance_px)).sum() / r.sum()) if r.any() else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f
