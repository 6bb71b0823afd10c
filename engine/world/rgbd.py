"""What every RGBD job (LDM3D, LDM3D-sr) writes and shares: one sample's four files, depth as LDM3D's disparity, the memory at
hand; and what a sample's ``meta.json`` says of its files when they are read back (its depth's meaning, its projection)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..diffusion.sources import RGBD4, RGBD6, RGBD_SR
from ..samples import Writer, json_file, png
from . import capture
from . import depth as depthlib

OUTPUT_NAMES = ("rgb.png", "depth16.png", "depth.npy", "meta.json")
MAX_SIDE = 8192
BASE = "base"  # where an upscaled sample keeps its generated base files


def disparity_from_metric(depth: np.ndarray) -> np.ndarray:
    """Distances → LDM3D's relative inverse depth in [0, 1] (near = 1), spread over the depth's own near–far range."""
    dist = depthlib.metric_distances(depth.astype(np.float32))
    near, far = float(dist.min()), float(dist.max())
    return depthlib.encode_inverse_depth(dist, near, max(far, near * 1.001)).astype(np.float32) / 65535


def total_memory(device: Any) -> int:
    if device.type == "cuda":
        import torch

        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0  # unknown: do not refuse


def rgbd_writers(rgb: np.ndarray, d16: np.ndarray, disparity: np.ndarray, meta: dict[str, Any]) -> dict[str, Writer]:
    """How each output file of one sample is written."""

    def depth_npy(path: Path) -> None:
        with open(path, "wb") as f:  # np.save on a path would append ".npy" to the temporary name
            np.save(f, np.ascontiguousarray(disparity, dtype=np.float32))

    return {"rgb.png": png(rgb), "depth16.png": png(d16), "depth.npy": depth_npy, "meta.json": json_file(meta)}


def sample_meta(file: str | Path) -> dict[str, Any] | None:
    """The ``meta.json`` of the sample (an LDM3D or LDM3D-sr output, or a capture) ``file`` is one of the files of, or None.

    It lies beside the file; an upscaled sample's ``base/`` files belong to the sample one folder up.
    """
    path = Path(file)
    base = path.parent.name == BASE
    try:
        meta = json.loads(((path.parent.parent if base else path.parent) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if meta.get("kind") in (RGBD6, RGBD4, RGBD_SR):
        return meta if path.name in OUTPUT_NAMES else None
    return meta if capture.is_capture(meta) and not base and path.name in capture.OUTPUT_NAMES else None


def read_depth(path: str | Path, mode: str) -> depthlib.DepthFile:
    """A depth file as ``mode`` reads it. AUTO takes what the ``meta.json`` of the sample it belongs to says: a capture's
    depth is its distances (its 16-bit inverse depth decoded with the capture's near and far), LDM3D's and LDM3D-sr's is
    relative inverse depth (their ``depth.npy`` too, though it is a float file); only without one does the file type
    decide (float formats: metric, 8/16-bit images: relative). A chosen mode goes by the file type."""
    stored = depthlib.read_depth_file(path)
    meta = sample_meta(path) if mode == depthlib.AUTO else None
    if meta is None:
        return stored._replace(mode=depthlib.resolve_mode(mode, stored.mode))
    if not capture.is_capture(meta):
        return depthlib.DepthFile(stored.values, depthlib.RELATIVE, f"{stored.kind}, relative inverse depth as its meta.json says")
    if stored.mode == depthlib.METRIC:
        return stored._replace(kind=f"{stored.kind}, a capture's distances")
    distances = depthlib.relative_distances(stored.values, depthlib.INVERSE, near=float(meta["near"]), far=float(meta["far"]))
    return depthlib.DepthFile(distances, depthlib.METRIC, f"{stored.kind}, a capture's inverse depth read with its near and far")
