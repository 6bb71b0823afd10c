"""What every RGBD job (LDM3D, LDM3D-sr) writes and shares: one sample's four files, depth as LDM3D's disparity, the memory at
hand; and what a sample's ``meta.json`` says of its files when they are read back (its depth's meaning, its projection)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..diffusion.sources import RGBD4, RGBD6, RGBD_SR
from ..errors import BadInput
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


#: Depth file types looked for beside a dropped RGB panorama, float files first; the first two are float files.
DEPTH_SUFFIXES = (".exr", ".hdr", ".tif", ".tiff", ".png", ".npy")
FLOAT_SUFFIXES = DEPTH_SUFFIXES[:2]


def _says_depth(path: Path) -> bool:
    return "depth" in path.stem.lower()


def depth_names(rgb: str | Path) -> list[str]:
    """The depth file names that go with an RGB panorama, in the order they are looked for: ``NAMErgb.*`` pairs with
    ``NAMEdepth.*`` (our own ``rgb.png``: a capture's ``depth.exr``, a generation's ``depth.npy``, then ``depth16.png``),
    any other ``NAME.*`` with ``NAME_depth.*``."""
    stem = Path(rgb).stem
    base = stem[:-3] if stem.lower().endswith("rgb") else f"{stem}_"
    return [f"{base}depth{suffix}" for suffix in DEPTH_SUFFIXES] + [f"{base}depth16.png"]


def paired_panorama(paths: list[str]) -> tuple[str, str]:
    """(RGB, depth) of dropped files. Two: the depth is the one whose name says depth, else the float file (EXR/HDR).
    One: it is the RGB, its depth the first of :func:`depth_names` beside it. Anything else is refused in one line."""
    files = [Path(p) for p in paths]
    if len(files) == 2:
        for says in (_says_depth, lambda f: f.suffix.lower() in FLOAT_SUFFIXES):
            depths = [f for f in files if says(f)]
            if len(depths) == 1:
                return str(files[1 - files.index(depths[0])]), str(depths[0])
        both = " and ".join(f.name for f in files)
        raise BadInput(f"Cannot tell which of {both} is the depth: name it NAME_depth, or make it the only EXR/HDR file")
    if len(files) != 1:
        raise BadInput(f"Drop one RGB panorama, or it and its depth together ({len(files)} files dropped)")
    rgb = files[0]
    if _says_depth(rgb):
        raise BadInput(f"{rgb.name} looks like a depth panorama: drop its RGB panorama with it")
    names = depth_names(rgb)
    found = next((rgb.parent / name for name in names if (rgb.parent / name).is_file()), None)
    if found is None:
        raise BadInput(f"No depth beside {rgb.name} (such as {names[0]}): drop the RGB panorama and its depth together")
    return str(rgb), str(found)
