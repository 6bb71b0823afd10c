"""What every RGBD job (LDM3D, LDM3D-sr) writes and shares: one sample's four files, depth as LDM3D's disparity, the memory at hand."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..samples import Writer, json_file, png
from . import depth as depthlib

OUTPUT_NAMES = ("rgb.png", "depth16.png", "depth.npy", "meta.json")
MAX_SIDE = 8192


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
