"""The ``generate_views`` job: one object image (ImageDream) or a prompt (MVDream) → four views with their cameras, as files.

Each object set is a folder holding ``view_0.png … view_3.png`` (azimuths 0, 90,
180, 270), ``input.png`` (the prepared input), ``transforms.json`` (nerfstudio:
shared intrinsics and each view's camera-to-world matrix at LGM's distance
and field of view), ``meta.json``, and with ``reconstruct`` the quick mesh
``hull.ply`` (the visual hull of the four silhouettes, coloured from the views).
Everything that can be checked is checked before a model loads; files are
written all-or-nothing and nothing is overwritten unless asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..choices import IMAGE_PREPARATIONS, VIEW_SOURCES
from ..diffusion import sources
from ..errors import BadInput
from ..imagefiles import check_writable, read_image
from ..params import (
    DEGREES,
    INPUT_FILE,
    PIXELS,
    SEED_MAX,
    Inspect,
    Note,
    count_field,
    guidance_field,
    negative_prompt_field,
    nested,
    output_folder_field,
    overwrite_field,
    param,
    prompt_field,
    recommended_steps,
    refuse,
    scheduler_field,
    seed_field,
    steps_field,
)
from ..progress import Reporter
from ..samples import Writer, json_file, planned, png, write_samples
from . import cameras
from .model import DOWNLOAD_PATTERNS, IMAGEDREAM, inspect_multiview
from .prepare import prepare

IMAGEDREAM_MODEL = "ashawkey/imagedream-ipmv-diffusers"
MVDREAM_MODEL = "ashawkey/mvdream-sd2.1-diffusers"
VIEW_NAMES = tuple(f"view_{i}.png" for i in range(4))
TRAINED_ELEVATIONS = (0.0, 30.0)  # the range the models were trained on; outside it they still run, with a warning
MAX_COUNT = 16
HULL_VOXELS_PER_PIXEL = 0.5  # the quick mesh's grid: 128³ for 256-pixel views


@dataclass
class ViewsRequest:
    source: str = param("TEXT", "From", "What the views are made from", choices=VIEW_SOURCES, blender=True, cli=None)
    image_path: str = param(
        "",
        "Image File",
        "The object image (best with a transparent background)",
        path=INPUT_FILE,
        cli="--image",
        cli_sets=(("source", "FILE"),),
    )
    image_name: str = param("", "Image", "An image in this .blend", blender=True, cli=None)
    object_name: str = param(
        "",
        "Object",
        "An object or collection to render from the front; empty: the selected objects",
        blender=True,
        cli="--object",
        cli_sets=(("source", "OBJECT"),),
    )
    model: str = param(
        "",
        "Model",
        "An ImageDream (image → views) or MVDream (text → views) folder or repo id; empty: the published one for the source",
        model=True,
    )
    prompt: str = prompt_field("", "What the object is (optional with an image)")
    negative_prompt: str = negative_prompt_field("What the views should not show")
    steps: int = steps_field(recommended_steps())
    guidance: float = guidance_field(5.0)
    seed: int = seed_field("Same seed and settings give the same views; set i uses seed + i")
    count: int = count_field(MAX_COUNT, "Object sets (four views each); set i uses seed + i")
    elevation: float = param(
        0.0,
        "Elevation",
        "The views' camera elevation",
        unit=DEGREES,
        min=-90.0,
        max=90.0,
        open_min=True,
        open_max=True,
        usual=TRAINED_ELEVATIONS,
        why="the models were trained on 0–30°",
    )
    size: int = param(
        256,
        "Size",
        "The views' size (the models were trained at 256)",
        unit=PIXELS,
        min=64,
        max=1024,
        multiple=64,
        why="the UNet works in 64-pixel blocks; the models were trained at 256, and 1024 holds 16× its tokens",
    )
    preparation: str = param("AUTO", "Prepare", "How the image is prepared", choices=IMAGE_PREPARATIONS, cli="--preprocess")
    scheduler: str = scheduler_field()
    reconstruct: bool = param(False, "Quick Mesh", "Carve the four silhouettes' visual hull into a coloured mesh (hull.ply)")
    out_dir: str = output_folder_field("Folder for the views, transforms.json, meta.json (and hull.ply); empty: a new folder")
    access: sources.ModelAccess = nested(sources.ModelAccess)
    overwrite: bool = overwrite_field()
    # Filled by the operator (pixels instead of the file):
    image: np.ndarray | None = None  # H×W×3/4, uint8/uint16 or float in [0, 1], straight alpha

    @property
    def takes_image(self) -> bool:
        return self.image is not None or bool(self.image_path) or self.source in ("IMAGE", "OBJECT")

    def check(self) -> list[Note]:
        if self.seed + self.count - 1 > SEED_MAX:
            refuse("seed", f"set {self.count} would use seed {self.seed + self.count - 1}, above {SEED_MAX}")
        if self.source == "FILE" and not self.image_path and self.image is None:
            refuse("image_path", "choose an image file of the object")
        if not self.takes_image and not self.prompt.strip() and not self.model:
            refuse("prompt", "MVDream makes views from text: it needs a prompt (or give an image)")
        return []

    def models(self) -> list[tuple[str, str, Inspect]]:
        name = self.model.strip() or (IMAGEDREAM_MODEL if self.takes_image else MVDREAM_MODEL)
        return [("model", name, sources.sampled(inspect_multiview, self.steps))]


@dataclass
class HullArrays:
    vertices: np.ndarray  # V×3 float32, in the views' world (transforms.json)
    faces: np.ndarray  # F×3 int32
    colours: np.ndarray  # V×3 float32 in [0, 1]


@dataclass
class ViewsResult:
    paths: list[dict[str, str]] = field(default_factory=list)  # per set: file name → path
    seeds: list[int] = field(default_factory=list)
    kind: str = ""  # imagedream or mvdream
    model: str = ""
    revision: str = ""
    size: int = 0
    transforms: dict[str, Any] = field(default_factory=dict)  # the views' cameras (the same for every set)
    hulls: list[HullArrays] = field(default_factory=list)  # per set, with ``reconstruct``
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    unet_calls: int = 0


def output_names(takes_image: bool, reconstruct: bool) -> tuple[str, ...]:
    return (*VIEW_NAMES, *(("input.png",) if takes_image else ()), "transforms.json", "meta.json", *(("hull.ply",) if reconstruct else ()))


def _input_pixels(r: ViewsRequest) -> np.ndarray | None:
    if r.image is not None and r.image_path:
        raise BadInput("Give the image as pixels or as a file, not both")
    if r.image_path:
        try:
            return read_image(r.image_path).pixels
        except Exception as exc:  # OpenImageIO's own reasons: not an image, unreadable, …
            raise BadInput(f"Cannot read {r.image_path} as an image: {exc}") from None
    if r.image is None:
        return None
    pixels = np.asarray(r.image)
    if pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise BadInput(f"The image must be H×W×3 or H×W×4, got shape {pixels.shape}")
    return pixels


def generate_views(r: ViewsRequest, report: Reporter) -> ViewsResult:
    started = time.perf_counter()
    pixels = _input_pixels(r)
    model_name = r.model.strip() or (IMAGEDREAM_MODEL if pixels is not None else MVDREAM_MODEL)
    out_dir = Path(r.out_dir)
    check_writable(out_dir)
    prepared = prepare(pixels, r.size, r.preparation) if pixels is not None else None
    access = r.access
    path = access.locate(model_name, report, DOWNLOAD_PATTERNS)
    folder = inspect_multiview(path, model_name, access.allow_pickle)
    if folder.takes_image and prepared is None:
        raise BadInput(f"{model_name} is an ImageDream model: it needs an object image (for text only, choose {MVDREAM_MODEL})")
    if not folder.takes_image and prepared is not None:
        raise BadInput(f"{model_name} is a text-only MVDream model: it cannot use the image (choose {IMAGEDREAM_MODEL}, or give no image)")
    if not folder.takes_image and not r.prompt.strip():
        raise BadInput("MVDream makes views from text: it needs a prompt")
    planned(out_dir, r.count, output_names(folder.takes_image, r.reconstruct), r.overwrite)
    report.total = r.steps + 5 + r.reconstruct

    from ..diffusion import loading
    from . import pipeline  # the heavy part starts here
    from .model import load_multiview

    device = loading.pick_device(access.device)
    dtype = loading.pick_dtype(access.precision, device)
    report.step(f"Loading {folder.name}")
    model = load_multiview(folder, device, dtype)
    seeds = [r.seed + i for i in range(r.count)]
    settings = pipeline.ViewSettings(
        prompts=[r.prompt] * r.count,
        negatives=[r.negative_prompt] * r.count,
        seeds=seeds,
        size=r.size,
        steps=r.steps,
        guidance=r.guidance,
        scheduler=r.scheduler,
        elevation=r.elevation,
        image=prepared.rgb if prepared is not None else None,
    )
    images = pipeline.generate(model, settings, report)
    transforms = cameras.transforms(r.size, r.elevation)
    resolution = max(32, int(r.size * HULL_VOXELS_PER_PIXEL))
    hulls = [_hull(views, transforms, resolution) for views in images.views] if r.reconstruct else []
    if r.reconstruct:
        report.step("Quick mesh carved")
    report.token.check()  # a cancel now still writes nothing

    meta = _meta(r, folder, model_name, prepared.how if prepared is not None else "")
    writers = []
    for i, seed in enumerate(seeds):
        files: dict[str, Writer] = {name: png(view) for name, view in zip(VIEW_NAMES, images.views[i])}
        if prepared is not None:
            files["input.png"] = png(prepared.rgb)
        files["transforms.json"], files["meta.json"] = json_file(transforms), json_file({**meta, "seed": seed})
        if hulls:
            files["hull.ply"] = _ply(hulls[i])
        writers.append(files)
    result = ViewsResult(seeds=seeds, kind=folder.kind, model=model_name, revision=folder.revision, size=r.size, transforms=transforms)
    result.paths = write_samples(out_dir, writers, r.overwrite)
    report.step("Files written")
    result.hulls, result.unet_calls = hulls, images.unet_calls
    result.seconds = time.perf_counter() - started
    return result


def _hull(views: np.ndarray, transforms: dict[str, Any], resolution: int) -> HullArrays:
    from .hull import silhouettes, visual_hull

    c2w = np.array([f["transform_matrix"] for f in transforms["frames"]], np.float64)
    mesh = visual_hull(
        views, silhouettes(views), c2w, transforms["fl_x"], transforms["fl_y"], transforms["cx"], transforms["cy"], resolution
    )
    return HullArrays(mesh.vertices, mesh.faces, mesh.colours)


def _meta(r: ViewsRequest, folder: Any, model_name: str, how: str) -> dict[str, Any]:
    return {
        "prompt": r.prompt,
        "negative_prompt": r.negative_prompt,
        **sources.provenance(model_name, folder),
        "scheduler": r.scheduler,
        "steps": r.steps,
        "guidance": r.guidance,
        "elevation": r.elevation,
        "size": r.size,
        "preparation": r.preparation.lower() if folder.kind == IMAGEDREAM else None,
        "prepared": how or None,
        "views": {name: {"azimuth": a} for name, a in zip(VIEW_NAMES, cameras.AZIMUTHS)},
        "front_view": "view_1.png" if folder.kind == IMAGEDREAM else None,
        "camera_distance": cameras.DISTANCE,
        "fov_y_degrees": cameras.FOV_DEG,
        "cameras": (
            "transforms.json: OpenGL camera axes in a Z-up world; azimuth 0 at -Y, 90 at +X, 180 at +Y, 270 at -X; "
            "distance and field of view as LGM assumes (the models encode neither)"
        ),
        "engine_version": __version__,
    }


def _ply(hull: HullArrays) -> Writer:
    return lambda path: write_ply(path, hull)


def write_ply(path: Path, hull: HullArrays) -> None:
    """A binary PLY mesh with 8-bit vertex colours (what Blender, MeshLab and most viewers read)."""
    vertex = np.empty(len(hull.vertices), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for axis, name in enumerate("xyz"):
        vertex[name] = hull.vertices[:, axis]
    rgb = np.round(np.clip(hull.colours, 0, 1) * 255).astype(np.uint8)
    for channel, name in enumerate(("red", "green", "blue")):
        vertex[name] = rgb[:, channel]
    face = np.empty(len(hull.faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face["n"], face["v"] = 3, hull.faces
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertex)}\nproperty float x\nproperty float y\nproperty float z\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {len(face)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertex.tobytes())
        f.write(face.tobytes())
