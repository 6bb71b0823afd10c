"""Posed image sets: what ViewNeTI trains on, written from Blender renders and read back for training.

A set is a folder: ``images/000.png …`` and ``cameras.json`` — the image size,
the target the cameras look at, and per image its file, K, R and t (OpenCV
axes: x_cam = R·X + t), the Blender camera-to-world matrix, and the camera in
both ViewNeTI parameterisations (``dtu12``: P = K [R | t] row-major;
``spherical``: cos and sin of the azimuth, elevation in degrees, distance).
A set may also name the cameras its parameterisation's ranges are fitted over
(``range_dtu12``: a DTU set's every calibration camera), when they are more
than its own views.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cameras import extrinsics
from ..choices import CAMERA_PARAMETERISATIONS, TRAINING_LAYOUTS
from ..errors import BadInput
from ..imagefiles import check_writable, copy_png, flatten_alpha, read_image, write_png
from ..params import DEGREES, FACTOR, LENGTH, PIXELS, Note, output_folder_field, overwrite_field, param, refuse, seed_field
from ..progress import Reporter
from ..samples import Writer, json_file, write_samples
from .cameras import SIZES, projection_numbers, spherical_numbers

CAMERAS = "cameras.json"


def _background(text: str) -> dict[str, Any]:
    """``--background r,g,b``: the views on this colour (0–1 each) instead of transparent."""
    try:
        r, g, b = (float(v) for v in text.split(","))
    except ValueError:
        raise BadInput(f"--background takes r,g,b in 0–1, not {text!r}") from None
    return {"transparent": False, "background": (r, g, b)}


@dataclass
class PosedSetRequest:
    object_name: str = param(
        "",
        "Objects",
        "Comma-separated objects or collections; empty: the selected objects, or the whole scene if none",
        blender=True,
        cli="--objects",
    )
    views: int = param(24, "Views", "How many cameras", min=1, max=10_000, soft=(2, 200))
    layout: str = param(TRAINING_LAYOUTS.default, "Layout", "Where the cameras go", choices=TRAINING_LAYOUTS)
    elevation: float = param(
        15.0, "Elevation", "The orbit's elevation (staggered: the middle one, ±15°)", unit=DEGREES, min=-89.0, max=89.0
    )
    distance: float = param(
        0.0,
        "Distance",
        "Camera distance from the target (staggered: the nearest, then ×1.15 and ×1.3); 0: the objects fill the frame",
        unit=LENGTH,
        min=0.0,
        max=1e6,
        soft=(0.0, 100.0),
    )
    fov: float = param(40.0, "Field of View", "The vertical field of view", unit=DEGREES, min=5.0, max=120.0)
    width: int = param(
        512,
        "Width",
        "The renders' size",
        unit=PIXELS,
        min=16,
        max=4096,
        soft=(64, 2048),
        why="a training view; 4K renders take hours",
        cli="--size",
        cli_fields=("width", "height"),
    )
    height: int = param(
        384, "Height", "The renders' height", unit=PIXELS, min=16, max=4096, soft=(64, 2048), why="a training view; 4K renders take hours"
    )
    samples: int = param(32, "Samples", "Cycles samples per pixel", min=1, max=65536, soft=(1, 1024))
    transparent: bool = param(True, "Transparent", "Keep the background transparent (else the colour below)", cli=None)
    background: tuple[float, float, float] = param(
        (1.0, 1.0, 1.0),
        "Background",
        "The colour to put the views on (r,g,b in 0–1)",
        unit=FACTOR,
        cli_parse=_background,
        cli_fields=("background", "transparent"),
    )
    seed: int = seed_field("The hemisphere layout's draws")
    out_dir: str = output_folder_field("Folder for images/ and cameras.json; empty: a new folder")
    overwrite: bool = overwrite_field("Replace a set already in the output folder")
    # Filled by the operator after its renders:
    images: list[str] = field(default_factory=list)  # rendered files (scratch), one per camera
    cameras: list[list[list[float]]] = field(default_factory=list)  # 4×4 camera-to-world, OpenGL axes (Blender's)
    k: list[list[float]] = field(default_factory=list)  # 3×3 intrinsics of the renders
    target: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    extra: dict[str, Any] = field(default_factory=dict)  # how the views were made (layout, seed, …), kept in cameras.json

    def check(self) -> list[Note]:
        reach = 89.0 - max(ELEVATION_STEPS)
        if self.layout == STAGGERED and abs(self.elevation) > reach:
            refuse("elevation", f"the staggered orbit goes {max(ELEVATION_STEPS):g}° either side: keep it within ±{reach:g}°")
        if not self.transparent and not all(0.0 <= c <= 1.0 for c in self.background):
            refuse("background", "each of r, g, b must be 0–1")
        return []

    @property
    def colour(self) -> list[float] | None:
        """The background the views are put on; None: kept transparent."""
        return None if self.transparent else list(self.background)


@dataclass
class PosedSetResult:
    out_dir: str = ""
    views: int = 0
    width: int = 0
    height: int = 0


def write_posed_set(r: PosedSetRequest, report: Reporter) -> PosedSetResult:
    """Copy the renders into ``images/`` and write ``cameras.json``, all-or-nothing."""
    if not r.images or len(r.images) != len(r.cameras):
        raise BadInput(f"{len(r.images)} images for {len(r.cameras)} cameras")
    out = Path(r.out_dir)
    check_writable(out)
    k = np.asarray(r.k, np.float64)
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    sizes = {read_image(p).pixels.shape[:2] for p in r.images}
    if len(sizes) != 1:
        raise BadInput("The renders have mixed sizes")
    height, width = sizes.pop()
    entries = []
    for i, matrix in enumerate(np.asarray(r.cameras, np.float64)):
        rotation, translation = extrinsics(matrix)
        entries.append(
            {
                "file": f"images/{i:03d}.png",
                "K": k.tolist(),
                "R": rotation.tolist(),
                "t": translation.tolist(),
                "camera_to_world": matrix.tolist(),
                "dtu12": projection_numbers(matrix, fx, fy, cx, cy).tolist(),
                "spherical": spherical_numbers(matrix, tuple(r.target)).tolist(),  # type: ignore[arg-type]
            }
        )
    posed = {"width": width, "height": height, "target": list(r.target), "images": entries, **r.extra}
    files: dict[str, Writer] = {
        e["file"]: _copy_from(source) if r.colour is None else _on_colour(source, r.colour) for e, source in zip(entries, r.images)
    }
    files[CAMERAS] = json_file(posed)
    write_samples(out, [files], r.overwrite)
    report.step(f"Wrote {len(entries)} posed views")
    return PosedSetResult(str(out), len(entries), width, height)


def _copy_from(source: str) -> Writer:
    return lambda path: copy_png(source, path)


def _on_colour(source: str, colour: list[float]) -> Writer:
    """An RGBA render composited on a solid colour, as 8-bit RGB."""

    def write(path: Path) -> None:
        rgb, _ = flatten_alpha(read_image(source).pixels, colour[:3])
        write_png(path, np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8))

    return write


STAGGERED, ORBIT, HEMISPHERE = TRAINING_LAYOUTS.ids
#: The staggered orbit's steps: elevations about the chosen one (degrees), distances as multiples of the chosen one.
#: ±15° about the default 15° spans 0–30°, where novel views are usually asked for; distances only grow from the chosen
#: one, which is the nearest at which the objects fit the frame. Both step every view, the distance one step further
#: every third view: any two views differ in both, and every nine make all nine pairs (at other azimuths each round).
ELEVATION_STEPS, DISTANCE_STEPS = (-15.0, 0.0, 15.0), (1.0, 1.15, 1.3)


def training_poses(
    layout: str, count: int, elevation: float, distance: float, seed: int, target: tuple[float, float, float]
) -> list[np.ndarray]:
    """Camera-to-world matrices (Blender's) looking at ``target``: an even orbit stepping through elevations and distances
    about the chosen ones (the default), an even orbit at one elevation, or views sampled over the upper hemisphere."""
    from ..cameras import blender_camera_matrix
    from ..viewpoints import Uniform, ViewDistribution, Viewpoint, sample_viewpoints

    if count < 1 or not distance > 0:
        raise BadInput(f"Need at least one view at a distance above 0, got {count} views at {distance}")
    if layout == STAGGERED:
        heights = [float(np.clip(elevation + ELEVATION_STEPS[i % 3], -89.0, 89.0)) for i in range(count)]
        views = [Viewpoint(360.0 * i / count, 90.0 - h, 0.0, distance * DISTANCE_STEPS[(i + i // 3) % 3]) for i, h in enumerate(heights)]
    elif layout == ORBIT:
        views = [Viewpoint(360.0 * i / count, 90.0 - elevation, 0.0, distance) for i in range(count)]
    elif layout == HEMISPHERE:
        views = sample_viewpoints(count, ViewDistribution(distance=distance, polar=Uniform(0.0, 90.0)), seed)
    else:
        TRAINING_LAYOUTS.get(layout)  # refuses with the list
    poses = []
    for view in views:
        matrix = blender_camera_matrix(view)
        matrix[:3, 3] += np.asarray(target, np.float64)
        poses.append(matrix)
    return poses


def posed_sets_in(folder: Path) -> list[Path]:
    """The posed sets a folder names: itself if it is one, else its sub-folders that are (sorted by name)."""
    if (folder / CAMERAS).is_file():
        return [folder]
    found = sorted(p for p in folder.iterdir() if (p / CAMERAS).is_file()) if folder.is_dir() else []
    if not found:
        raise BadInput(f"No posed image set ({CAMERAS}) in {folder} or its sub-folders")
    return found


def range_key(kind: str) -> str:
    """The ``cameras.json`` key of the cameras a set's ``kind`` ranges are fitted over, when they are not just its views."""
    return f"range_{kind.lower()}"


@dataclass
class PosedImages:
    images: list[np.ndarray]  # H×W×3 float in [0, 1], on white where transparent
    numbers: np.ndarray  # [N, k]: each image's camera, raw
    target: list[float]
    range_numbers: np.ndarray  # [M, k]: more cameras the ranges are fitted over (a DTU set's calibration); M = 0 if none


def read_posed_set(folder: Path, kind: str) -> PosedImages:
    """The images, their cameras' raw numbers, the target, and any cameras the ranges are fitted over."""
    CAMERA_PARAMETERISATIONS.get(kind)
    path = folder / CAMERAS
    try:
        posed = json.loads(path.read_text(encoding="utf-8"))
        entries = posed["images"]
        ranged = np.asarray(posed.get(range_key(kind), []), np.float64).reshape(-1, SIZES[kind])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"{folder} is not a posed image set: {path.name} unreadable ({exc})") from None
    images, numbers = [], []
    for entry in entries:
        images.append(flatten_alpha(read_image(folder / entry["file"]).pixels)[0])
        values = entry.get(kind.lower())
        if values is None or len(values) != SIZES[kind]:
            raise BadInput(f"{folder / entry['file']}: no {kind} camera numbers in {path.name}")
        numbers.append(values)
    sizes = {im.shape[:2] for im in images}
    if len(sizes) > 1:
        raise BadInput(f"The images in {folder} have mixed sizes ({', '.join(f'{w}×{h}' for h, w in sorted(sizes))})")
    target = [float(v) for v in posed.get("target", [0.0, 0.0, 0.0])]
    return PosedImages(images, np.asarray(numbers, np.float64), target, ranged)
