"""A quick mesh from the four views: the visual hull of their silhouettes, carved in a voxel grid and coloured from the views.

Every point of the object projects inside the object in every view, so the
intersection of the four silhouettes' cones (the visual hull) contains it.
Carving that intersection needs no reconstruction model and takes a fraction of
a second, which makes it a closed, coloured mesh to look at right after the
views are generated. It is a hull, not a reconstruction: a concavity that no
silhouette shows (the inside of a bowl, the space between a chair's legs seen
only from the side) stays filled.

Grid: a cube centred at the world origin (the cameras look at it). Unless
``bounds`` says otherwise its half-size is the smallest that holds the
intersection of the frustums of the four silhouettes' bounding boxes, computed
exactly from that polyhedron's vertices, plus a voxel and a half of margin:
nothing outside it can be in the hull, so the voxels are spent on the object
whatever its size in the views.

Surface: a point is inside when it projects inside the object mask of every
view (outside an image is outside). Marching cubes (scikit-image) runs on the
smallest over the views of each mask's signed distance to its edge (pixels,
interpolated bilinearly, scaled to world units at the point's depth): positive
where a point projects inside every mask, up to the rounding of the masks'
pixel corners, and it places the surface between voxel centres at sub-voxel
precision instead of the staircase of a 0/1 grid.

Colours: each vertex takes the view whose camera its normal faces most, sampled
where it projects, bilinearly among that view's object pixels only (no white
fringe from the background). Occlusion is not checked: a vertex hidden in its
best-facing view (behind an arm, say) takes the colour of what hides it. The
values are the views' pixel values as given, no colour management.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..errors import BadInput

TOLERANCE = 0.05  # an RGB pixel is object when a channel differs from the background by more than this
ALPHA_THRESHOLD = 0.5  # an RGBA pixel is object when its alpha is above this
SPECK_FRACTION = 0.0005  # RGB silhouettes: object components smaller than this share of the image are noise
MIN_RESOLUTION, MAX_RESOLUTION = 16, 512
MARGIN_VOXELS = 1.5  # derived bounds: free voxels between the hull's extent and the grid's side
_CHUNK = 1 << 21  # voxels evaluated at once (memory: a few float32 arrays of this length)
_FAR = 3.0  # voxels: the field is left unrefined at points at least this far outside


@dataclass
class HullMesh:
    vertices: np.ndarray  # V×3 float32, world coordinates (Blender Z-up), the cameras' units
    faces: np.ndarray  # F×3 int32, counter-clockwise seen from outside (normals point out)
    colours: np.ndarray  # V×3 float32 in [0, 1], the views' pixel values (no colour management)
    voxel_size: float  # the grid's voxel edge, world units: the mesh's detail


def silhouettes(views: np.ndarray, background: tuple[float, float, float] = (1.0, 1.0, 1.0), tolerance: float = TOLERANCE) -> np.ndarray:
    """K×H×W bool, the object pixels of ``views`` (K×H×W×3 or K×H×W×4, uint8/uint16 or float in [0, 1]).

    RGBA: alpha above :data:`ALPHA_THRESHOLD`, as given. RGB: pixels farther than
    ``tolerance`` from ``background`` in some channel, then each view's enclosed
    holes filled and its specks dropped. The errors are lopsided: a background
    pixel taken for object only leaves the hull larger where other views do not
    carve it, an object pixel taken for background carves into the object, so
    the tolerance sits just above a generated background's noise and holes are
    filled (a real through-hole, a mug's handle, is lost to the hull).
    """
    pixels = _as_float(views)
    if pixels.shape[3] == 4:
        return pixels[..., 3] > ALPHA_THRESHOLD
    colour = np.asarray(background, np.float32)
    if colour.shape != (3,) or not np.all((colour >= 0) & (colour <= 1)):
        raise BadInput(f"The background must be three values in [0, 1], got {background}")
    if not 0 <= tolerance < 1:
        raise BadInput(f"The background tolerance must lie in [0, 1), got {tolerance}")
    masks = np.abs(pixels - colour).max(axis=3) > tolerance
    return np.stack([_cleaned(mask) for mask in masks])


def visual_hull(
    views: np.ndarray,
    masks: np.ndarray,
    cameras: np.ndarray,
    fl_x: float,
    fl_y: float,
    cx: float,
    cy: float,
    resolution: int = 128,
    bounds: float | None = None,
) -> HullMesh:
    """The coloured visual hull of ``masks`` (K×H×W bool) seen by ``cameras`` (K×4×4 camera-to-world, OpenGL axes).

    ``views``: the K images the masks cut (K×H×W×3 or ×4, uint8/uint16 or float
    in [0, 1]) for the colours; the intrinsics are in pixels, shared by all
    views. ``resolution``: voxels along each side of the grid; ``bounds``: the
    grid's half-size in world units (None: derived from the masks, see the
    module's docstring).
    """
    pixels = _as_float(views)[..., :3]
    masks = np.asarray(masks)
    poses = np.asarray(cameras, np.float64)
    count, height, width = pixels.shape[:3]
    if masks.shape != (count, height, width) or masks.dtype != np.bool_:
        raise BadInput(f"The masks must be {count}×{height}×{width} bool, one per view; got {masks.dtype} {masks.shape}")
    if poses.shape != (count, 4, 4) or not np.isfinite(poses).all():
        raise BadInput(f"The cameras must be {count} finite 4×4 camera-to-world matrices, one per view; got shape {poses.shape}")
    if not all(np.isfinite(value) for value in (fl_x, fl_y, cx, cy)) or not (fl_x > 0 and fl_y > 0):
        raise BadInput(f"The focal lengths must be positive and the intrinsics finite, got fl_x={fl_x}, fl_y={fl_y}, cx={cx}, cy={cy}")
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        raise BadInput(f"The hull's resolution must be a whole number from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got {resolution}")
    if bounds is not None and not (np.isfinite(bounds) and bounds > 0):
        raise BadInput(f"The hull's bounds must be a positive half-size, got {bounds}")
    for k, mask in enumerate(masks):
        if not mask.any():
            raise BadInput(f"View {k} shows no object: nothing to carve")
    intrinsics = (float(fl_x), float(fl_y), float(cx), float(cy))
    if bounds is None:
        bounds = _extent(masks, poses, intrinsics) / (1 - 2 * MARGIN_VOXELS / resolution)
    voxel = 2 * float(bounds) / resolution
    field = _padded_field(masks, poses, intrinsics, int(resolution), float(bounds))
    if not (field > 0).any():
        raise BadInput("The silhouettes share no volume: the carve leaves nothing (do the cameras match the views?)")

    from skimage.measure import marching_cubes  # lazily: geometry jobs run without scikit-image

    corners, faces, _, _ = marching_cubes(field, 0.0, allow_degenerate=False)
    vertices = (-bounds + (corners - 0.5) * voxel).astype(np.float32)  # padded index i is the voxel centred at -b + (i - ½)·voxel
    faces = np.ascontiguousarray(faces[:, ::-1], np.int32)  # scikit-image winds them clockwise seen from the side its normals face
    colours = _colours(vertices, faces, pixels, masks, poses, intrinsics)
    return HullMesh(vertices, faces, colours, voxel)


def _as_float(views: np.ndarray) -> np.ndarray:
    images = np.asarray(views)
    if images.ndim != 4 or images.shape[3] not in (3, 4) or images.shape[0] < 1 or min(images.shape[1:3]) < 2:
        raise BadInput(f"Expected the views as K×H×W×3 or K×H×W×4 images (at least 2×2 pixels), got shape {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255
    if images.dtype == np.uint16:
        return images.astype(np.float32) / 65535
    if not np.issubdtype(images.dtype, np.floating):
        raise BadInput(f"Expected the views as uint8, uint16 or float pixels, got {images.dtype}")
    if not np.isfinite(images).all():
        raise BadInput("The views have NaN or infinite values")
    return np.clip(images.astype(np.float32), 0, 1)


def _cleaned(mask: np.ndarray) -> np.ndarray:
    """One RGB silhouette with its enclosed holes filled and components under SPECK_FRACTION of the image dropped."""
    from scipy import ndimage  # comes with scikit-image

    filled = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(filled)
    if count == 0:
        return np.asarray(filled, bool)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= SPECK_FRACTION * mask.size
    keep[0] = False
    return np.asarray(keep[labels], bool)


def _extent(masks: np.ndarray, poses: np.ndarray, intrinsics: tuple[float, float, float, float]) -> float:
    """The largest |coordinate| of the polyhedron where the frustums of all masks' bounding boxes meet."""
    fl_x, fl_y, cx, cy = intrinsics
    normals, offsets = [], []
    for mask, pose in zip(masks, poses):
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        left, right, top, bottom = cols[0], cols[-1] + 1, rows[0], rows[-1] + 1
        # camera space q, depth -q_z > 0: u ≥ left, u ≤ right, v ≥ top, v ≤ bottom, each as n·q ≤ 0
        in_camera = np.array([[-fl_x, 0, cx - left], [fl_x, 0, right - cx], [0, fl_y, cy - top], [0, -fl_y, bottom - cy]])
        in_world = in_camera @ pose[:3, :3].T  # n·q = n·Rᵀ(p - c) = (R n)·p - (R n)·c
        normals.append(in_world)
        offsets.append(in_world @ pose[:3, 3])
    cap = 1000.0 * max(1.0, float(np.abs(poses[:, :3, 3]).max()))  # a box far beyond the cameras keeps the polyhedron bounded
    normals.append(np.vstack([np.eye(3), -np.eye(3)]))
    offsets.append(np.full(6, cap))
    a, b = np.vstack(normals), np.concatenate(offsets)
    scale = np.linalg.norm(a, axis=1)
    a, b = a / scale[:, None], b / scale
    triples = np.array(list(itertools.combinations(range(len(a)), 3)))
    systems, sides = a[triples], b[triples]
    solvable = np.abs(np.linalg.det(systems)) > 1e-9
    corners = np.linalg.solve(systems[solvable], sides[solvable][..., None])[..., 0]
    feasible = corners[(corners @ a.T <= b + 1e-9 * cap).all(axis=1)]
    if len(feasible) == 0:
        raise BadInput("The silhouettes share no volume: the carve leaves nothing (do the cameras match the views?)")
    extent = float(np.abs(feasible).max())
    if extent > 0.999 * cap:
        raise BadInput("The cameras do not surround the object, so its hull has no bounds: give the hull's bounds")
    return extent


def _padded_field(
    masks: np.ndarray, poses: np.ndarray, intrinsics: tuple[float, float, float, float], resolution: int, bounds: float
) -> np.ndarray:
    """(resolution + 2)³ float32, indexed [x, y, z]: the field at the grid's voxel centres inside an outside layer that closes the surface.

    Positive where a centre projects inside every mask, and about the distance to the hull's side there.
    """
    from scipy import ndimage  # comes with scikit-image

    fl_x, fl_y, cx, cy = intrinsics
    voxel = 2 * bounds / resolution
    centres = (-bounds + (np.arange(resolution) + 0.5) * voxel).astype(np.float64)
    per_world = 1 / np.sqrt(fl_x * fl_y)  # pixels to world units at depth 1
    views = []
    for mask, pose in zip(masks, poses):
        framed = np.pad(mask, 1)  # the image's edge is background
        inside = ndimage.distance_transform_edt(framed) - 0.5
        outside = ndimage.distance_transform_edt(~framed) - 0.5
        signed = np.where(framed, inside, -outside).astype(np.float32)  # pixels; zero on the mask's edge
        rotation, position = pose[:3, :3], pose[:3, 3]
        # camera-space q = Rᵀ(p - c) = x·R[0] + y·R[1] + z·R[2] - Rᵀc: the y-z part is shared by every x slab
        shift = rotation.T @ position
        plane = [(centres[:, None] * rotation[1, a] + centres[None, :] * rotation[2, a] - shift[a]).astype(np.float32) for a in range(3)]
        views.append((signed, rotation[0], plane))
    field = np.full((resolution + 2,) * 3, -voxel, np.float32)
    step = max(1, _CHUNK // resolution**2)
    for start in range(0, resolution, step):
        xs = centres[start : start + step, None, None]
        slab = np.full((len(xs), resolution, resolution), np.inf, np.float32).reshape(-1)
        alive = np.arange(slab.size)  # where the field may still be near or above zero
        for signed, row, plane in views:
            if len(alive) == slab.size:
                qx, qy, qz = (((xs * row[a]).astype(np.float32) + plane[a]).reshape(-1) for a in range(3))
            else:
                at_x, at_yz = np.divmod(alive, resolution**2)
                qx, qy, qz = ((xs[:, 0, 0] * row[a]).astype(np.float32)[at_x] + plane[a].reshape(-1)[at_yz] for a in range(3))
            depth = -qz
            ahead = depth > 1e-6 * bounds
            inverse = 1 / np.where(ahead, depth, np.float32(1))
            # pixel (i, j) has its centre at (i + ½, j + ½), which is (i + 1, j + 1) in the framed map
            u = cx + 0.5 + fl_x * qx * inverse
            v = cy + 0.5 - fl_y * qy * inverse
            distance = ndimage.map_coordinates(signed, np.stack([v, u]), order=1, mode="nearest", prefilter=False) * (depth * per_world)
            slab[alive] = np.minimum(slab[alive], np.where(ahead, distance, -_FAR * voxel))
            # the field changes about a voxel per voxel: a point this far out is no voxel's neighbour across the surface,
            # and further views can only lower it
            alive = alive[slab[alive] > -_FAR * voxel]
        field[1 + start : 1 + start + len(xs), 1:-1, 1:-1] = slab.reshape(len(xs), resolution, resolution)
    return field


def _colours(
    vertices: np.ndarray,
    faces: np.ndarray,
    pixels: np.ndarray,
    masks: np.ndarray,
    poses: np.ndarray,
    intrinsics: tuple[float, float, float, float],
) -> np.ndarray:
    """V×3: each vertex from the view its normal faces most, bilinear among that view's object pixels."""
    fl_x, fl_y, cx, cy = intrinsics
    points = vertices.astype(np.float64)
    corners = points[faces]
    area_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # length: twice the area
    normals = np.stack([np.bincount(faces.ravel(), np.repeat(area_normals[:, a], 3), len(points)) for a in range(3)], axis=1)
    towards = poses[None, :, :3, 3] - points[:, None, :]  # V×K: vertex to camera
    facing = np.einsum("va,vka->vk", normals, towards / np.linalg.norm(towards, axis=2, keepdims=True))
    best = facing.argmax(axis=1)
    colours = np.zeros((len(points), 3), np.float32)
    height, width = masks.shape[1:]
    for k in range(len(poses)):
        chosen = np.nonzero(best == k)[0]
        if len(chosen) == 0:
            continue
        q = (points[chosen] - poses[k, :3, 3]) @ poses[k, :3, :3]
        depth = np.maximum(-q[:, 2], 1e-9)
        x = np.clip(cx + fl_x * q[:, 0] / depth - 0.5, 0, width - 1)  # continuous, on pixel centres
        y = np.clip(cy - fl_y * q[:, 1] / depth - 0.5, 0, height - 1)
        left, top = np.minimum(x.astype(np.int64), width - 2), np.minimum(y.astype(np.int64), height - 2)
        fx, fy = x - left, y - top
        total, weight = np.zeros((len(chosen), 3)), np.zeros(len(chosen))
        for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
            w = w * masks[k, top + dy, left + dx]
            total += w[:, None] * pixels[k, top + dy, left + dx]
            weight += w
        nearest = pixels[k, np.rint(y).astype(np.int64), np.rint(x).astype(np.int64)]  # no object pixel among the four
        colours[chosen] = np.where(weight[:, None] > 1e-6, total / np.maximum(weight, 1e-6)[:, None], nearest)
    return np.clip(colours, 0, 1)
