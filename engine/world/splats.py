"""RGBD panorama → 3D Gaussian splats, and the ``.ply`` viewers read them from.

One Gaussian per sampled pixel (the world sphere's grid: :func:`.world_sphere.grid_pixels`), centred on the pixel's
point (its distance along its ray, :func:`.equirect.ray_directions`), so the splats seen from the centre reproduce the
panorama as the world sphere does.

- **Axes**: Blender's world, +Z up, as the world sphere (metres from ``centre``); not the reference code's COLMAP frame
  (+Y down). A viewer that assumes +Y up shows the scene lying on its back: rotate it −90° about X.
- **Colour**: the zeroth spherical-harmonic coefficient, ``f_dc = (rgb − 0.5) / SH_C0`` (the reference code's
  convention; the panorama's values as they are, sRGB for an 8-bit image); the 45 ``f_rest`` are zeros.
- **Shape**: the local axes are x east, y north (tangential), z out along the ray. The tangential standard deviations
  are :data:`FOOTPRINT` of the pixel's extent at its distance, ``distance · 2π/columns · cos(latitude)`` and
  ``distance · π/rows``, rows and columns of the sampled grid (so a grid step widens them). Along the ray it is
  :data:`THICKNESS` of the smaller of the two: a flat disc facing the centre.
- **Rotation**: the unit quaternion ``w x y z`` (w ≥ 0) of the matrix whose columns are those axes in world axes.
- **Opacity**: ``logit(min(alpha, MAX_OPACITY))`` (opacity 1 has no logit); without an alpha every pixel has
  :data:`MAX_OPACITY`. Pixels whose alpha is 0 have no Gaussian.

The ``rgbd_splats`` job (:class:`SplatRequest`) reads the panoramas as the world sphere does (the same depth modes,
a capture's depth centred where it was captured) and takes the RGB file's alpha channel, if any, as the opacity.
The file (:func:`write_splat_ply`) is binary little-endian with exactly the reference code's 62 float32 properties in
its order (:data:`SPLAT_DTYPE`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BadInput
from ..imagefiles import NewFiles, read_image, unit_float
from ..params import INPUT_FILE, OUTPUT_FILE, Note, overwrite_field, param, refuse, same_as
from ..progress import Reporter
from . import depth as depthlib
from . import equirect
from .capture import capture_origin
from .layers import peel
from .world_sphere import WorldSphereRequest, grid_pixels, grid_shape, request_distances

#: The zeroth spherical-harmonic basis, 1 / (2√π): a viewer shows ``0.5 + SH_C0 · f_dc``.
SH_C0 = 0.28209479177387814
#: Higher-order SH coefficients written (as zeros): 15 per channel, degree 3, the layout every viewer reads.
REST = 45
#: The opacity of an opaque pixel: the largest written (opacity 1 would be an infinite logit).
MAX_OPACITY = 0.99
#: Tangential standard deviation as a fraction of the pixel's extent: about the least that leaves no gaps to see through
#: (midway between two neighbours the pair covers 95%, amid four 97%), so the least blur.
FOOTPRINT = 0.7
#: Along-ray standard deviation as a fraction of the smaller tangential one.
THICKNESS = 0.1

PROPERTIES = (
    ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    + [f"f_rest_{k}" for k in range(REST)]
    + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
)
#: One Gaussian as a row of the ``.ply``: every property a little-endian float32, in the reference code's order.
SPLAT_DTYPE = np.dtype([(name, "<f4") for name in PROPERTIES])


def _unit_values(values: np.ndarray, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """8/16-bit codes or floats in [0, 1] as float64 in [0, 1], or :class:`BadInput`."""
    values = np.asarray(values)
    if values.shape != shape:
        raise BadInput(f"{what} must have shape {shape}, got {values.shape}")
    if values.dtype not in (np.uint8, np.uint16) and values.dtype.kind != "f":
        raise BadInput(f"{what} must be 8/16-bit codes or floats in [0, 1], got {values.dtype}")
    values = unit_float(values, np.float64)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise BadInput(f"{what} must lie in [0, 1], got values in [{np.nanmin(values):.4g}, {np.nanmax(values):.4g}] or not finite")
    return values


def _quaternions(frames: np.ndarray) -> np.ndarray:
    """Unit quaternions ``w x y z`` (w ≥ 0) of rotation matrices ``frames`` (N×3×3), by whichever of w, x, y, z is largest."""
    m = frames
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # 4·q_k² for k = w, x, y, z; the largest is well away from 0.
    squares = np.stack([1 + trace, 1 + 2 * m[:, 0, 0] - trace, 1 + 2 * m[:, 1, 1] - trace, 1 + 2 * m[:, 2, 2] - trace], axis=1)
    # 4·q_a·q_b for each pair, indexed [a][b]: off-diagonal sums and differences of the matrix.
    wx, wy, wz = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    xy, xz, yz = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]
    products = np.stack(
        [
            np.stack(row, axis=1)
            for row in ([squares[:, 0], wx, wy, wz], [wx, squares[:, 1], xy, xz], [wy, xy, squares[:, 2], yz], [wz, xz, yz, squares[:, 3]])
        ],
        axis=1,
    )  # N×4×4
    best = np.argmax(squares, axis=1)
    rows = products[np.arange(len(m)), best]  # 4·q_best·q_k
    q = rows / (2 * np.sqrt(squares[np.arange(len(m)), best]))[:, None]
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def gaussians_from_rgbd(
    rgb: np.ndarray,
    distance: np.ndarray,
    alpha: np.ndarray | None = None,
    step: int = 1,
    centre: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Gaussians (rows of :data:`SPLAT_DTYPE`, grid order: rows top down, columns left to right) of a panorama.

    ``rgb`` is H×W×3 (8/16-bit codes or floats in [0, 1]), ``distance`` H×W metric ray distances (what
    :func:`.depth.distances` gives the world sphere), ``alpha`` H×W like ``rgb``; ``centre`` is where the panorama
    was seen from.
    """
    dist_full = depthlib.metric_distances(distance)
    height, width = dist_full.shape
    colours = _unit_values(rgb, "RGB", (height, width, 3))
    opacity = None if alpha is None else _unit_values(alpha, "Alpha", (height, width))
    origin = np.asarray(centre, dtype=np.float64)
    if origin.shape != (3,) or not np.isfinite(origin).all():
        raise BadInput(f"Centre must be three finite coordinates, got {centre!r}")

    row_idx, col_idx = grid_pixels(height, width, step)
    rays = equirect.ray_directions(((col_idx + 0.5) / width)[None, :], ((row_idx + 0.5) / height)[:, None]).reshape(-1, 3)
    pick = np.ix_(row_idx, col_idx)
    dist = dist_full[pick].astype(np.float64).ravel()
    colour = colours[pick].reshape(-1, 3)
    alphas = np.full(dist.size, MAX_OPACITY) if opacity is None else opacity[pick].ravel()
    keep = alphas > 0
    rays, dist, colour, alphas = rays[keep], dist[keep], colour[keep], np.minimum(alphas[keep], MAX_OPACITY)

    east = np.cross([0.0, 0.0, 1.0], rays)
    cos_lat = np.linalg.norm(east, axis=1)  # the horizontal part of a unit ray; never 0, pixel centres miss the poles
    east /= cos_lat[:, None]
    north = np.cross(rays, east)
    sigma_east = FOOTPRINT * dist * (2 * np.pi / col_idx.size) * cos_lat
    sigma_north = FOOTPRINT * dist * (np.pi / row_idx.size)
    sigma_ray = THICKNESS * np.minimum(sigma_east, sigma_north)

    out = np.zeros(dist.size, dtype=SPLAT_DTYPE)
    for k, axis in enumerate("xyz"):
        out[axis] = origin[k] + rays[:, k] * dist
        out[f"f_dc_{k}"] = (colour[:, k] - 0.5) / SH_C0
    out["opacity"] = np.log(alphas / (1 - alphas))
    for k, sigma in enumerate((sigma_east, sigma_north, sigma_ray)):
        out[f"scale_{k}"] = np.log(sigma)
    quats = _quaternions(np.stack([east, north, rays], axis=2))
    for k in range(4):
        out[f"rot_{k}"] = quats[:, k]
    return out


def ply_header(count: int) -> bytes:
    """The ``.ply`` header of ``count`` Gaussians."""
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {count}"]
    lines += [f"property float {name}" for name in PROPERTIES] + ["end_header"]
    return ("\n".join(lines) + "\n").encode("ascii")


def write_splat_ply(path: str | Path, gaussians: np.ndarray, overwrite: bool = False) -> None:
    """Write ``gaussians`` (rows of :data:`SPLAT_DTYPE`) as a binary little-endian ``.ply``, whole or not at all."""
    if gaussians.dtype != SPLAT_DTYPE or gaussians.ndim != 1:
        raise BadInput(f"Gaussians must be a 1-D array of the splat layout, got {gaussians.dtype} of shape {gaussians.shape}")
    target = Path(path)

    def write(file: Path) -> None:
        with open(file, "wb") as f:
            f.write(ply_header(len(gaussians)))
            f.write(np.ascontiguousarray(gaussians).tobytes())

    with NewFiles([target], overwrite) as files:
        target.parent.mkdir(parents=True, exist_ok=True)
        files.write(target, write)


#: How the world sphere reads its depth and peels its layers: a world sphere records these, so its splats are made alike.
READING = (
    "depth_mode",
    "relative_mapping",
    "radius",
    "strength",
    "near",
    "far",
    "layers",
    "edge_threshold",
    "min_region",
    "reach",
    "border",
)


@dataclass
class SplatRequest:
    rgb_path: str = param(
        "",
        "RGB",
        "The colour panorama (2:1); its alpha channel, if any, is the splats' opacity",
        path=INPUT_FILE,
        cli="--rgb",
        cli_required=True,
    )
    depth_path: str = same_as(WorldSphereRequest, "depth_path")
    depth_mode: str = same_as(WorldSphereRequest, "depth_mode")
    relative_mapping: str = same_as(WorldSphereRequest, "relative_mapping")
    radius: float = same_as(WorldSphereRequest, "radius")
    strength: float = same_as(WorldSphereRequest, "strength")
    near: float = same_as(WorldSphereRequest, "near")
    far: float = same_as(WorldSphereRequest, "far")
    step: int = param(
        1, "Grid Step", "One Gaussian every Nth pixel: 1 full resolution, 2 half, 4 quarter …", min=1, max=64, prop="grid_step"
    )
    layers: int = same_as(WorldSphereRequest, "layers")
    edge_threshold: float = same_as(WorldSphereRequest, "edge_threshold")
    min_region: int = same_as(WorldSphereRequest, "min_region")
    reach: float = same_as(WorldSphereRequest, "reach")
    border: int = same_as(WorldSphereRequest, "border")
    out_path: str = param("", "Splats", "The .ply to write", path=OUTPUT_FILE, cli="--out", cli_required=True)
    overwrite: bool = overwrite_field("Replace an existing .ply")
    depth: np.ndarray | None = None  # H×W metric distances or relative disparity in [0, 1]; None: read depth_path

    def check(self) -> list[Note]:
        if self.relative_mapping == depthlib.INVERSE and not self.near < self.far:
            refuse("far", f"must be farther than Near ({self.near:g})")
        if Path(self.out_path).suffix.lower() != ".ply":
            refuse("out_path", f"must be a .ply file, got {self.out_path!r}")
        return []


@dataclass
class SplatResult:
    path: str
    count: int  # Gaussians written
    rows: int
    cols: int
    centre: list[float]  # where the panorama was seen from: a capture's origin, else the world origin
    depth_mode: str  # the mode used (AUTO resolved)
    depth_kind: str  # how the depth was stored

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        return dataclasses.asdict(self)


def splats_from_rgbd(request: SplatRequest, report: Reporter) -> SplatResult:
    """The ``rgbd_splats`` job: an RGB and a depth panorama → one ``.ply`` of Gaussians."""
    report.total = 3
    image = read_image(request.rgb_path)
    if image.pixels.shape[2] not in (3, 4):
        raise BadInput(f"The RGB panorama must have 3 or 4 channels (RGB or RGBA), got {image.pixels.shape[2]}")
    height, width = image.pixels.shape[:2]
    dist, mode, kind = request_distances(request, (width, height))
    report.step("Reading the panoramas")
    alpha = image.pixels[..., 3] if image.pixels.shape[2] == 4 else None
    centre = capture_origin(request.depth_path) if request.depth_path else []
    parts = [(image.pixels[..., :3], dist, alpha)]
    if request.layers > 1:  # every layer's splats: the background's, filled, behind the foreground's, faded at their edges
        layered = peel(
            unit_float(image.pixels[..., :3]),
            dist,
            request.layers,
            request.edge_threshold,
            request.min_region,
            request.border,
            request.reach,
        )
        parts = [(layered.layers[0].rgb, layered.layers[0].distance, alpha)]
        for layer in layered.layers[1:]:
            opacity = layer.alpha if alpha is None else layer.alpha * unit_float(alpha)
            parts.append((layer.rgb, np.where(opacity > 0, layer.distance, 1.0), opacity))
    origin = centre or (0.0, 0.0, 0.0)
    gaussians = np.concatenate([gaussians_from_rgbd(rgb, d, a, request.step, origin) for rgb, d, a in parts])
    report.step("Making the Gaussians")
    write_splat_ply(request.out_path, gaussians, request.overwrite)
    report.step("Done")
    rows, cols = grid_shape(height, width, request.step)
    return SplatResult(request.out_path, len(gaussians), rows, cols, centre or [0.0, 0.0, 0.0], mode, kind)
