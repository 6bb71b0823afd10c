"""Turn a Cycles render of the equirectangular capture camera into the RGBD files.

Blender renders and saves two files into a scratch folder: the colour-managed
``rgb.png`` and a multilayer EXR holding the Depth pass. Everything after that
is file and image logic and lives here: ray distances to ``depth.exr``, 16-bit
normalised inverse depth to ``depth16.png``, and ``meta.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..choices import CAPTURE_ORIGINS
from ..errors import BadInput
from ..imagefiles import NewFiles, copy_png, read_exr, write_exr, write_png
from ..params import LENGTH, PIXELS, Note, output_folder_field, overwrite_field, param, refuse
from ..progress import Reporter
from . import depth as depthlib
from . import equirect

OUTPUT_NAMES = ("rgb.png", "depth.exr", "depth16.png", "meta.json")
#: Cycles writes about 1e10 where a ray hits nothing.
MISS_DISTANCE = 1e9


def parse_origin(text: str) -> dict[str, Any]:
    """``--from``: camera, cursor, or x,y,z (empty: the camera, else the cursor)."""
    named = {"": "AUTO", "camera": "CAMERA", "cursor": "CURSOR"}
    if text.lower() in named:
        return {"origin": named[text.lower()]}
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise BadInput(f"--from takes camera, cursor or x,y,z, not {text!r}") from None
    return {"origin": "LOCATION", "location": (x, y, z)}


@dataclass
class CaptureRequest:
    out_dir: str = output_folder_field("Folder for rgb.png, depth.exr, depth16.png and meta.json; empty: a new folder")
    width: int = param(
        1024,
        "Width",
        "Panorama width; the height is half of it",
        unit=PIXELS,
        min=16,
        max=16384,
        multiple=2,
        soft=(256, 8192),
        why="the height is half the width; Cycles renders up to 16384",
    )
    samples: int = param(32, "Samples", "Cycles samples per pixel", min=1, max=65536, soft=(1, 4096))
    denoise: bool = param(True, "Denoise", "Denoise the colour render")
    origin: str = param(
        "AUTO",
        "From",
        "Where the panorama is taken from",
        choices=CAPTURE_ORIGINS,
        blender=True,
        cli="--from",
        cli_parse=parse_origin,
        cli_fields=("origin", "location"),
    )
    location: tuple[float, float, float] = param(
        (0.0, 0.0, 0.0), "Location", "The point to capture from (From: Location)", unit=LENGTH, blender=True, cli=None
    )
    overwrite: bool = overwrite_field()
    # Filled by the operator after its render:
    render_exr: str = ""  # multilayer EXR from Blender with a ``*.Depth.Z`` channel
    rgb_png: str = ""  # colour-managed render Blender saved; moved into place
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)  # where it was captured
    scene_name: str = ""

    def check(self) -> list[Note]:
        if self.out_dir:
            existing = [p.name for p in output_paths(self.out_dir) if p.exists()]
            if existing and not self.overwrite:
                refuse("out_dir", f"already holds {', '.join(existing)} ({{overwrite}} replaces them)")
        return []


@dataclass
class CaptureResult:
    paths: dict[str, str] = field(default_factory=dict)  # file name → path written
    width: int = 0
    height: int = 0
    near: float = 0.0
    far: float = 0.0
    miss_fraction: float = 0.0


def output_paths(out_dir: str | Path) -> list[Path]:
    return [Path(out_dir) / name for name in OUTPUT_NAMES]


def is_capture(meta: dict[str, Any]) -> bool:
    """Whether a sample's ``meta.json`` is a capture's (it describes the float distances in ``depth.exr``)."""
    return "depth_exr" in meta


def capture_origin(depth_path: str | Path) -> list[float]:
    """Where the panorama that ``depth_path`` belongs to was captured: the ``origin``
    in the ``meta.json`` beside it when that folder is a capture, else []."""
    depth = Path(depth_path)
    meta_path = depth.parent / "meta.json"
    if depth.name not in OUTPUT_NAMES[1:3] or not meta_path.is_file():
        return []
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        origin = [float(c) for c in meta["origin"]] if is_capture(meta) else []
    except (OSError, ValueError, KeyError, TypeError):
        return []  # not a capture's metadata: the sphere goes where the user says
    return origin if len(origin) == 3 else []


def depth_channel(channels: dict[str, np.ndarray]) -> np.ndarray:
    for name, values in channels.items():
        if name == "Z" or name.endswith("Depth.Z"):
            return values
    raise BadInput(f"The render has no Depth pass (channels: {', '.join(sorted(channels)) or 'none'})")


def ray_distances(raw: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """Depth pass → finite distances, (near, far) of the hits, and the miss fraction.

    Rays that hit nothing are put on the far shell so the sphere stays closed.
    """
    hit = np.isfinite(raw) & (raw > 0) & (raw < MISS_DISTANCE)
    if not hit.any():
        raise BadInput("Nothing visible in the capture: every ray missed (is the scene empty or hidden from the camera?)")
    near, far = float(raw[hit].min()), float(raw[hit].max())
    far = max(far, near * 1.001)  # a perfectly round room still needs near < far
    distance = np.where(hit, raw, far).astype(np.float32)
    return distance, near, far, float(1.0 - hit.mean())


def encode_capture(request: CaptureRequest, report: Reporter) -> CaptureResult:
    report.total = 4
    out_dir = Path(request.out_dir)
    for needed in (request.render_exr, request.rgb_png):
        if not Path(needed).is_file():
            raise BadInput(f"Render output {needed} is missing")
    raw = depth_channel(read_exr(request.render_exr))
    report.step("Reading the depth pass")
    distance, near, far, miss = ray_distances(raw)
    height, width = distance.shape
    inverse16 = depthlib.encode_inverse_depth(distance, near, far)
    report.step("Encoding inverse depth")
    meta = {
        "width": width,
        "height": height,
        "projection": "equirectangular",
        "convention": equirect.CONVENTION,
        "origin": list(request.position),
        "near": near,
        "far": far,
        "miss_fraction": miss,
        "depth_exr": "float32 distance along each pixel's ray, scene units, channel Y",
        "depth16_png": "round(65535 * (1/d - 1/far) / (1/near - 1/far)): near = bright",
        "scene": request.scene_name,
        "samples": request.samples,
        "engine_version": __version__,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    rgb, exr, png16, meta_path = output_paths(out_dir)
    with NewFiles([rgb, exr, png16, meta_path], request.overwrite) as files:
        files.write(exr, lambda p: write_exr(p, {"Y": distance}))
        files.write(png16, lambda p: write_png(p, inverse16))
        files.write(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8"))
        files.write(rgb, lambda p: copy_png(request.rgb_png, p))
        report.step("Writing files")
    report.step("Done")
    return CaptureResult(
        paths={p.name: str(p) for p in (rgb, exr, png16, meta_path)},
        width=width,
        height=height,
        near=near,
        far=far,
        miss_fraction=miss,
    )
