"""One view's annotations: mask, box, edges and where 3D points land in the image.

A point's visibility follows COCO: 2 visible, 1 in the image but hidden,
0 outside the image (or behind the camera). Hidden means the object's depth at
the point's pixel is nearer than the point by more than a tolerance:
``occlusion_tolerance`` × the object's size (largest extent of its 3D box), plus
the depth change of the surface across that pixel where it is slanted. A pixel
the object does not cover hides nothing, so a box corner off the surface is
visible unless the object itself is in front of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..cameras import extrinsics, intrinsics, project
from .edges import MISS_DEPTH, SLOPE_MARGIN, canny, canny_input, geometric_edges, surface_slope, unit_normals
from .masks import bbox_from_mask, mask_from_alpha, rle_encode
from .renders import ViewRender

VISIBLE, OCCLUDED, OUTSIDE = 2, 1, 0
OCCLUSION_TOLERANCE = 0.03


@dataclass(frozen=True)
class EdgeSettings:
    method: str = "CANNY"
    canny_low: float = 100.0
    canny_high: float = 200.0
    crease_deg: float = 35.0
    depth_jump: float = 0.03


@dataclass
class ViewAnnotation:
    k: np.ndarray  # 3×3
    r: np.ndarray  # 3×3, x_cam = R·X + t (OpenCV axes)
    t: np.ndarray  # 3
    mask: np.ndarray  # H×W bool
    bbox: list[float]  # COCO [x, y, w, h]
    area: int
    rle: dict
    edges: np.ndarray  # H×W uint8 0/255
    depth: np.ndarray  # H×W float32 planar depth, 0 where the object is not hit
    points_2d: np.ndarray  # P×2 pixel coordinates (NaN behind the camera)
    visibility: np.ndarray  # P int: 2 visible, 1 hidden, 0 outside


def visibility(uv: np.ndarray, z: np.ndarray, depth: np.ndarray, hit: np.ndarray, tolerance: np.ndarray | float) -> np.ndarray:
    """COCO v per point from its pixel position, its camera depth and the rendered depth.

    ``tolerance`` is a number or a per-pixel H×W array (how far behind the rendered
    surface a point may lie and still count as on it).
    """
    height, width = depth.shape
    v = np.full(len(z), OUTSIDE, np.int64)
    ok = (z > 0) & np.isfinite(uv).all(axis=1)
    ok[ok] = (uv[ok, 0] >= 0) & (uv[ok, 0] < width) & (uv[ok, 1] >= 0) & (uv[ok, 1] < height)
    cols = np.floor(uv[ok, 0]).astype(np.int64)
    rows = np.floor(uv[ok, 1]).astype(np.int64)
    tol = np.broadcast_to(np.asarray(tolerance, np.float64), depth.shape)[rows, cols]
    hidden = hit[rows, cols] & (z[ok] > depth[rows, cols] + tol)
    v[ok] = np.where(hidden, OCCLUDED, VISIBLE)
    return v


def occlusion_slack(render: ViewRender, k: np.ndarray, r: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Per pixel: how much a point on the surface seen there may lie behind the pixel's depth sample.

    The surface's own depth change across the pixel (×3, as for the edges: the
    point and Cycles' one depth sample may sit anywhere in it), so points on
    slanted faces and corners at the silhouette are not taken for hidden.
    """
    slope = surface_slope(unit_normals(render.normals), k, r)
    with np.errstate(invalid="ignore"):
        return np.where(hit, SLOPE_MARGIN * slope * render.depth, 0.0)


def edge_map(render: ViewRender, settings: EdgeSettings, k: np.ndarray, r: np.ndarray) -> np.ndarray:
    edges = np.zeros(render.alpha.shape, np.uint8)
    if settings.method in ("CANNY", "BOTH"):
        edges |= canny(canny_input(render.rgba), settings.canny_low, settings.canny_high, 3)
    if settings.method in ("GEOMETRIC", "BOTH"):
        edges |= geometric_edges(render.depth, render.normals, render.alpha, settings.depth_jump, settings.crease_deg, k=k, r=r)
    return edges


def annotate_view(
    render: ViewRender,
    camera_matrix: np.ndarray,
    lens_mm: float,
    sensor_mm: float,
    points: np.ndarray,
    object_size: float,
    settings: EdgeSettings,
    occlusion_tolerance: float = OCCLUSION_TOLERANCE,
) -> ViewAnnotation:
    """Everything the data set stores about one rendered view; ``points`` (P×3, world) get projected."""
    width, height = render.size
    k = intrinsics(lens_mm, sensor_mm, width, height)
    r, t = extrinsics(camera_matrix)
    mask = mask_from_alpha(render.alpha)
    hit = mask & np.isfinite(render.depth) & (render.depth > 0) & (render.depth < MISS_DEPTH)
    depth = np.where(hit, render.depth, 0.0).astype(np.float32)
    uv, z = project(points, k, r, t)
    v = visibility(uv, z, depth, hit, occlusion_tolerance * object_size + occlusion_slack(render, k, r, hit))
    rle = rle_encode(mask)
    return ViewAnnotation(
        k=k,
        r=r,
        t=t,
        mask=mask,
        bbox=bbox_from_mask(mask),
        area=int(mask.sum()),
        rle=rle,
        edges=edge_map(render, settings, k, r),
        depth=depth,
        points_2d=uv,
        visibility=v,
    )
