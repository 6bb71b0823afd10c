"""Depth images → distances along each pixel's ray, and back.

Two kinds of depth reach the engine: metric ray distances (a Blender capture,
in scene units) and relative disparity in [0, 1] (LDM3D / DPT: near = bright,
no scale). Relative disparity becomes distance either by the DepthFusion
paper's rule (0.5 keeps the base radius, 1 moves nearer, 0 farther) or by an
inverse-depth mapping between a near and a far distance, the exact inverse of
:func:`encode_inverse_depth`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..choices import DEPTH_MAPPINGS, DEPTH_MODES
from ..errors import BadInput
from ..imagefiles import read_image

#: Decide by the file (float formats hold distances, 8/16-bit images disparity), metric distances, or relative disparity.
AUTO, METRIC, RELATIVE = DEPTH_MODES.ids
#: Relative mappings: the paper's offset around a base radius, or inverse depth.
OFFSET, INVERSE = DEPTH_MAPPINGS.ids


def _describe_bad(values: np.ndarray) -> str:
    nan = int(np.isnan(values).sum())
    inf = int(np.isinf(values).sum())
    parts = [f"{nan} NaN" if nan else "", f"{inf} infinite" if inf else ""]
    return ", ".join(p for p in parts if p)


def check_depth_array(depth: np.ndarray) -> np.ndarray:
    """A 2-D float array with finite values, or :class:`BadInput` saying what is wrong."""
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] >= 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or depth.size == 0:
        raise BadInput(f"Depth must be a single-channel image, got an array of shape {depth.shape}")
    depth = depth.astype(np.float32, copy=False)
    if not np.isfinite(depth).all():
        raise BadInput(f"Depth has {_describe_bad(depth)} values; fix the depth image (or re-capture)")
    if not depth.any():
        raise BadInput("Depth is all zero: the depth image holds no information")
    return depth


def metric_distances(depth: np.ndarray) -> np.ndarray:
    """Validate metric ray distances: finite and strictly positive."""
    depth = check_depth_array(depth)
    bad = int((depth <= 0).sum())
    if bad:
        raise BadInput(
            f"Metric depth must be positive, but {bad} of {depth.size} pixels are zero or negative "
            "(is this relative disparity? use depth mode RELATIVE)"
        )
    return depth


def relative_distances(
    disparity: np.ndarray,
    mapping: str = OFFSET,
    radius: float = 5.0,
    strength: float = 1.0,
    near: float = 1.0,
    far: float = 10.0,
) -> np.ndarray:
    """Distances from relative disparity ``v`` in [0, 1] (near = 1).

    ``OFFSET`` (DepthFusion): ``radius · (1 + strength · (0.5 − v))``; strength in
    [0, 2) keeps every distance positive. ``INVERSE``: ``1/d = v/near + (1 − v)/far``.
    """
    v = check_depth_array(disparity)
    if v.min() < -1e-6 or v.max() > 1 + 1e-6:
        raise BadInput(
            f"Relative depth must lie in [0, 1], got [{v.min():.4g}, {v.max():.4g}] (is this metric depth? use depth mode METRIC)"
        )
    v = np.clip(v, 0.0, 1.0)
    if mapping == OFFSET:
        if not radius > 0:
            raise BadInput(f"Base radius must be positive, got {radius}")
        if not 0 <= strength < 2:
            raise BadInput(f"Depth strength must be in [0, 2) so every vertex stays in front of the viewer, got {strength}")
        return (radius * (1.0 + strength * (0.5 - v))).astype(np.float32)
    if mapping == INVERSE:
        if not 0 < near < far:
            raise BadInput(f"Need 0 < near < far for inverse depth, got near={near}, far={far}")
        return (1.0 / (v / near + (1.0 - v) / far)).astype(np.float32)
    raise BadInput(f"Unknown relative depth mapping {mapping!r}; use {OFFSET} or {INVERSE}")


class DepthFile(NamedTuple):
    """A depth file's values and what they hold."""

    values: np.ndarray  # H×W float32: distances as stored, or 8/16-bit codes scaled to [0, 1]
    mode: str  # METRIC for float files, RELATIVE for 8/16-bit images
    kind: str  # how it was stored, for reports: "float EXR", "16-bit PNG", "float .npy", …


#: Channels that hold depth in a multi-channel file, in order of preference (a Z pass such as
#: Blender's ``ViewLayer.Depth.Z``, a plain Y); a name matches itself or a ``.``-suffix.
_DEPTH_CHANNELS = ("Z", "depth", "Y", "R")


def as_stored(values: np.ndarray) -> tuple[np.ndarray, str]:
    """Depth values as a file or array stores them, and their mode: floats are distances
    (METRIC); 8/16-bit integer codes are disparity, scaled to [0, 1] (near = bright, RELATIVE)."""
    if values.dtype.kind == "f":
        return check_depth_array(values), METRIC
    if values.dtype.kind in "ui":
        return check_depth_array(values.astype(np.float32) / float(np.iinfo(values.dtype).max)), RELATIVE
    raise BadInput(f"Depth holds {values.dtype} values, not distances or disparity")


def read_depth_file(path: str | os.PathLike[str]) -> DepthFile:
    """Read a depth panorama: float EXR/HDR/TIFF/.npy are metric, 8/16-bit images relative disparity.

    Of several channels, the depth one is taken (a ``*.Depth.Z`` pass, ``Z``,
    ``Y`` or the first). 8/16-bit codes are scaled to [0, 1] (near = bright).
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise BadInput(f"Depth file not found: {path}")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BadInput(f"Could not read {path}: {exc}") from None
        values, mode = as_stored(array)
        return DepthFile(values, mode, f"{'float' if mode == METRIC else array.dtype} .npy")
    image = read_image(path)
    names = image.channels
    index = next((names.index(n) for wanted in _DEPTH_CHANNELS for n in names if n == wanted or n.endswith("." + wanted)), 0)
    values, mode = as_stored(image.pixels[..., index])
    label = image.format.upper().replace("OPENEXR", "EXR")
    return DepthFile(values, mode, f"float {label}" if mode == METRIC else f"{8 * image.pixels.dtype.itemsize}-bit {label}")


def resolve_mode(mode: str, stored: str) -> str:
    """The depth mode to use, by the file type, for a file whose values are ``stored`` (METRIC or RELATIVE).

    AUTO reads a sample's ``meta.json`` first where there is one: :func:`engine.world.rgbd.read_depth`.
    """
    if mode == AUTO:
        return stored
    if mode == METRIC and stored == RELATIVE:
        raise BadInput("The depth is an 8/16-bit image: it holds relative disparity, not distances (use depth mode Auto or Relative)")
    return mode


def distances(depth: np.ndarray, mode: str = METRIC, **relative: float | str) -> np.ndarray:
    """Dispatch on depth mode; ``relative`` holds :func:`relative_distances` options."""
    if mode == METRIC:
        return metric_distances(depth)
    if mode == RELATIVE:
        return relative_distances(depth, **relative)  # type: ignore[arg-type]
    raise BadInput(f"Unknown depth mode {mode!r}; use {METRIC} or {RELATIVE}")


def encode_inverse_depth(distance: np.ndarray, near: float, far: float) -> np.ndarray:
    """Metric distance → 16-bit normalised inverse depth (LDM3D/DPT: near = 65535).

    ``v = (1/d − 1/far) / (1/near − 1/far)``, so :func:`relative_distances` with
    ``INVERSE`` and the same near/far gives the distances back.
    """
    if not 0 < near < far:
        raise BadInput(f"Need 0 < near < far to encode inverse depth, got near={near}, far={far}")
    inv = 1.0 / np.clip(distance.astype(np.float64), near, far)
    v = (inv - 1.0 / far) / (1.0 / near - 1.0 / far)
    return np.round(np.clip(v, 0.0, 1.0) * 65535.0).astype(np.uint16)
