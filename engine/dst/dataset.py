"""The 3D-DST annotation job: rendered views in, a COCO data set folder out.

Dataset folder (paths inside the JSON files are relative to it):

- ``images/{view}.png``: the RGBA render, copied as is;
- ``edges/{view}.png``: the control image, uint8 0/255;
- ``masks/{view}.png``: the object mask (alpha > 0.5), uint8 0/255;
- ``depth/{view}.exr``: float32 planar depth, channel ``Y``, 0 where the object is not hit;
- ``annotations.json``: COCO (images, annotations with RLE masks, bbox-corner and user
  keypoints, and the pose: azimuth, elevation, theta = in-plane, distance, K, R, t);
- ``dataset.json``: every setting and the request's ``parameters`` (seeds, sampler).

Ids come from the global view index (image id = annotation id = index + 1), and
nothing depends on the date or the folders, so shards merge into exactly the
files one run would write. A view whose mask is empty (the object is out of
frame) keeps its image entry and files but gets no annotation; it is listed in
``empty_views`` and in the result's warnings. If every view is empty the job
refuses: that is a set-up error, not data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..cameras import POSE_TOLERANCE, blender_camera_matrix
from ..choices import AZIMUTH_RANGES, DST_OBJECT_SOURCES, EDGE_METHODS, POLAR_PRESETS
from ..errors import BadInput
from ..imagefiles import NewFiles, copy_png, write_exr, write_png
from ..params import DEGREES, OUTPUT_FOLDER, PIXELS, Note, overwrite_field, param, refuse, seed_field
from ..progress import Reporter
from ..shards import parse_shard
from ..viewpoints import (
    AZIMUTH_FULL,
    AZIMUTH_HALF,
    POLAR_HIGH,
    POLAR_WIDE,
    TruncatedNormal,
    Uniform,
    ViewDistribution,
    Viewpoint,
    check_viewpoint,
    distance_jitter,
    parse_viewpoints,
    sample_viewpoints,
)
from .annotate import OCCLUSION_TOLERANCE, OUTSIDE, EdgeSettings, ViewAnnotation, annotate_view
from .masks import ALPHA_THRESHOLD
from .normalize import CORNER_NAMES
from .renders import read_view_render, render_paths

FORMAT = "diffusion3d-dst"
FORMAT_VERSION = 1
ANNOTATIONS_JSON, DATASET_JSON = "annotations.json", "dataset.json"
EVERY_VISIBLE_MESH = "*"  # as the objects' names: every visible mesh object in the scene
#: Per-view files: kind → (folder, extension).
VIEW_FILES = {"image": ("images", ".png"), "edges": ("edges", ".png"), "mask": ("masks", ".png"), "depth": ("depth", ".exr")}
#: Keys of dataset.json that differ between the shards of one data set (the rest must agree).
PER_SHARD_KEYS = ("views", "empty_views", "shard")

CONVENTIONS = {
    "world": "Blender world, Z up; the object normalized: bbox centre at the origin, largest bbox extent 1",
    "angles": "degrees",
    "azimuth": "from +X toward +Y",
    "polar": "from +Z; elevation = 90 - polar",
    "theta": "in-plane rotation: positive turns the image content counter-clockwise",
    "camera_location": "distance * (sin polar cos azimuth, sin polar sin azimuth, cos polar), looking at the origin, +Z up",
    "camera_matrix": "Blender camera-to-world (camera looks along local -Z, local +Y is image up)",
    "extrinsics": "OpenCV: x_cam = R X + t, x right, y down, z forward",
    "pixels": "continuous: pixel (col c, row r) covers [c, c+1) x [r, r+1); principal point (W/2, H/2)",
    "keypoints": "COCO x, y, v; v = 2 visible, 1 in the image but hidden by the object, 0 outside (x = y = 0)",
    "corners": "8 corners of the object's 3D box, named bbox_XYZ with 0 = min and 1 = max along that axis",
    "depth": "planar depth along the optical axis (Cycles' Z pass), object units, 0 off the object",
}


@dataclass
class DSTObject:
    name: str
    class_name: str
    tags: list[str] = field(default_factory=list)
    keypoint_names: list[str] = field(default_factory=list)


@dataclass
class DSTView:
    name: str  # file stem of the render files, unique
    object_index: int  # into the request's objects
    azimuth: float
    polar: float
    inplane: float
    distance: float
    lens_mm: float
    sensor_mm: float  # sensor width, sensor fit AUTO
    camera_matrix: Any  # 4×4 Blender camera-to-world, as the view was rendered
    corners: Any  # 8×3 world corners of the normalized object's box, normalize.CORNER_NAMES order
    keypoints: dict[str, Any] = field(default_factory=dict)  # name → world xyz
    index: int = -1  # global view index over all shards; -1: its position in the request


def _polar_angle(label: str, default: float, help: str) -> Any:
    return param(default, label, help, unit=DEGREES, min=0.0, max=180.0, why="a polar angle: 0 above, 90 the horizon, 180 below")


@dataclass
class DSTAnnotateRequest:
    source: str = param("SELECTED", "Objects", "Which objects are the CAD models", choices=DST_OBJECT_SOURCES, blender=True, cli=None)
    collection: str = param(
        "",
        "Collection",
        "Collection: its mesh objects are the CAD models",
        blender=True,
        cli_sets=(("source", "COLLECTION"),),
    )
    object_names: str = param(
        "",
        "Object Names",
        f"Comma-separated object names, or {EVERY_VISIBLE_MESH} for every visible mesh (the command line's default); empty: the selection",
        blender=True,
        cli="--objects",
        ui=False,
    )
    views_per_object: int = param(8, "Views", "Viewpoints sampled per object", min=1, max=100000, soft=(1, 1000), cli="--views")
    azimuth_range: str = param("FULL", "Azimuth", "The azimuth's spread", choices=AZIMUTH_RANGES, cli="--azimuth")
    polar_preset: str = param(
        "WIDE",
        "Polar Angle",
        "3D-DST's polar-angle presets (0° straight above, 90° the horizon), or your own",
        choices=POLAR_PRESETS,
        cli="--elevation",
    )
    polar_mean: float = _polar_angle("Polar Mean", 90.0, "Custom: the polar angle's mean")
    polar_sd: float = _polar_angle("Polar Spread", 30.0, "Custom: the polar angle's standard deviation")
    polar_min: float = _polar_angle("Polar Min", 0.0, "Custom: the smallest polar angle")
    polar_max: float = _polar_angle("Polar Max", 180.0, "Custom: the largest polar angle")
    inplane_max: float = param(
        0.0, "In-Plane", "In-plane rotation uniform on ± this (0: none, as 3D-DST)", unit=DEGREES, min=0.0, max=180.0, cli="--inplane"
    )
    distance: float = param(2.0, "Distance", "Camera distance in normalized object sizes", min=0.1, max=1000.0, soft=(0.5, 20.0))
    distance_jitter: bool = param(False, "Jitter Distance", "3D-DST: truncated normal, sd 0.5 on [d − 0.5, d + 1.5]", cli="--jitter")
    seed: int = seed_field("Same seed and settings give the same viewpoints (object i uses seed + i)")
    viewpoints: str = param(
        "",
        "Viewpoints",
        "Explicit views instead of sampling: 'azimuth polar in-plane distance' per view, separated by ';' (degrees)",
    )
    resolution: int = param(512, "Resolution", "Square render size (3D-DST: 512)", unit=PIXELS, min=16, max=4096, soft=(64, 1024))
    samples: int = param(32, "Samples", "Cycles samples for the Canny path (3D-DST: 32)", min=1, max=65536, soft=(1, 1024))
    denoise: bool = param(True, "Denoise", "Denoise the colour renders")
    edge_method: str = param("CANNY", "Edges", "How the edge maps are made", choices=EDGE_METHODS, cli="--edges")
    dataset_dir: str = param(
        "",
        "Dataset",
        "The data set folder; empty: a new one under the default output folder",
        path=OUTPUT_FOLDER,
        cli="--out",
        cli_required=True,
    )
    shard: str = param("", "Shard", "I/N: render only this machine's share of the views (1-based I)")
    overwrite: bool = overwrite_field("Replace a data set already in the folder")
    # Filled by the operator after its renders:
    render_dir: str = ""
    objects: list[DSTObject] = field(default_factory=list)
    views: list[DSTView] = field(default_factory=list)
    canny_low: float = 100.0
    canny_high: float = 200.0
    crease_deg: float = 35.0
    depth_jump: float = 0.03  # relative depth step that makes an occluding contour
    occlusion_tolerance: float = OCCLUSION_TOLERANCE  # × object size, for keypoint visibility
    parameters: dict[str, Any] = field(default_factory=dict)  # recorded in dataset.json (seed, sampler, …)
    total_views: int = 0  # views over all shards; 0: the views given here

    def check(self) -> list[Note]:
        try:
            parse_shard(self.shard) if self.shard else None
        except BadInput as exc:
            refuse("shard", str(exc))
        if self.viewpoints.strip():
            try:
                parse_viewpoints(self.viewpoints)
            except BadInput as exc:
                refuse("viewpoints", str(exc))
        elif self.polar_preset == "CUSTOM" and self.polar_min > self.polar_max:
            refuse("polar_min", f"must not be above {{polar_max}} ({self.polar_max:g})")
        if self.source == "COLLECTION" and not self.collection:
            refuse("collection", "choose the collection whose mesh objects to render")
        if self.dataset_dir and (Path(self.dataset_dir) / ANNOTATIONS_JSON).exists() and not self.overwrite:
            refuse("dataset_dir", "already holds a data set ({overwrite} replaces it)")
        return []

    def planned_viewpoints(self, object_index: int) -> list[Viewpoint]:
        """Object ``object_index``'s viewpoints: the explicit list, or its draws from the distribution (seed + index)."""
        if self.viewpoints.strip():
            return parse_viewpoints(self.viewpoints)
        polar = {"WIDE": POLAR_WIDE, "HIGH": POLAR_HIGH}.get(self.polar_preset) or TruncatedNormal(
            self.polar_mean, self.polar_sd, self.polar_min, self.polar_max
        )
        distribution = ViewDistribution(
            distance=distance_jitter(self.distance) if self.distance_jitter else self.distance,
            azimuth=AZIMUTH_FULL if self.azimuth_range == "FULL" else AZIMUTH_HALF,
            polar=polar,
            inplane=Uniform(-self.inplane_max, self.inplane_max) if self.inplane_max > 0 else 0.0,
        )
        return sample_viewpoints(self.views_per_object, distribution, self.seed + object_index)


@dataclass
class DSTAnnotateResult:
    dataset_dir: str = ""
    views: int = 0
    images: int = 0
    annotations: int = 0
    empty_views: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


# --- input -------------------------------------------------------------------


def _array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    try:
        a = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"{what} is not numeric") from None
    if a.shape != shape or not np.isfinite(a).all():
        raise BadInput(f"{what} must be a finite {'×'.join(map(str, shape))} array, got shape {a.shape}")
    return a


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or any(c in name for c in "/\\\0") or len(name) > 200:
        raise BadInput(f"View name {name!r} cannot be a file name")


def _positive(value: float, what: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise BadInput(f"{what} must be positive, got {value}")


def checked_request(request: DSTAnnotateRequest) -> tuple[list[DSTObject], list[DSTView], int]:
    """Objects, views (sorted by global index, indices filled in) and the total view count; BadInput otherwise."""
    objects = list(request.objects)
    views = [replace(v) for v in request.views]  # copies: indices and arrays get filled in
    if not objects:
        raise BadInput("No objects given")
    if not views:
        raise BadInput("No views to annotate")
    EDGE_METHODS.get(request.edge_method)  # BadInput naming the methods there are
    if not (request.canny_low >= 0 and request.canny_high >= 0):
        raise BadInput(f"Canny thresholds must be ≥ 0, got {request.canny_low} and {request.canny_high}")
    if not 0 < request.crease_deg < 180:
        raise BadInput(f"Crease angle must be between 0 and 180°, got {request.crease_deg}")
    _positive(request.depth_jump, "Depth jump")
    if not request.occlusion_tolerance >= 0:
        raise BadInput(f"Occlusion tolerance must be ≥ 0, got {request.occlusion_tolerance}")
    if request.shard:
        parse_shard(request.shard)
    try:
        json.dumps(request.parameters, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"Parameters must be plain JSON values: {exc}") from None
    names = [o.name for o in objects]
    if len(set(names)) != len(names) or not all(names):
        raise BadInput("Object names must be unique and not empty")
    for obj in objects:
        if not obj.class_name:
            raise BadInput(f"Object {obj.name!r} has no class name")
        clash = set(obj.keypoint_names) & set(CORNER_NAMES)
        if clash or len(set(obj.keypoint_names)) != len(obj.keypoint_names):
            raise BadInput(f"Object {obj.name!r}: keypoint names must be unique and not bbox corner names")
    seen_names: set[str] = set()
    for position, view in enumerate(views):
        _check_name(view.name)
        if view.name in seen_names:
            raise BadInput(f"Two views are called {view.name!r}")
        seen_names.add(view.name)
        if view.index == -1:
            view.index = position
        if view.index < 0:
            raise BadInput(f"View {view.name!r}: index {view.index} is negative")
        if not 0 <= view.object_index < len(objects):
            raise BadInput(f"View {view.name!r}: object index {view.object_index} is not one of the {len(objects)} objects")
        check_viewpoint(Viewpoint(view.azimuth, view.polar, view.inplane, view.distance))
        _positive(view.lens_mm, f"View {view.name!r}: lens")
        _positive(view.sensor_mm, f"View {view.name!r}: sensor width")
        view.camera_matrix = _array(view.camera_matrix, (4, 4), f"View {view.name!r}: camera matrix")
        view.corners = _array(view.corners, (8, 3), f"View {view.name!r}: box corners")
        known = set(objects[view.object_index].keypoint_names)
        for kp, xyz in view.keypoints.items():
            if kp not in known:
                raise BadInput(f"View {view.name!r}: keypoint {kp!r} is not one of object {objects[view.object_index].name!r}'s")
            _array(xyz, (3,), f"View {view.name!r}: keypoint {kp!r}")
        expected = blender_camera_matrix(Viewpoint(view.azimuth, view.polar, view.inplane, view.distance))
        if np.abs(view.camera_matrix - expected).max() > POSE_TOLERANCE * max(1.0, view.distance):
            raise BadInput(
                f"View {view.name!r}: its camera matrix is not the camera of azimuth {view.azimuth}, "
                f"polar {view.polar}, in-plane {view.inplane}, distance {view.distance}"
            )
    indices = [v.index for v in views]
    if len(set(indices)) != len(indices):
        raise BadInput("Two views share one global index")
    total = request.total_views or len(views)
    if total < len(views) or max(indices) >= total:
        raise BadInput(f"View indices run up to {max(indices)} but the data set has {total} views")
    for view in views:
        for path in render_paths(request.render_dir, view.name):
            if not path.is_file():
                raise BadInput(f"View {view.name!r}: render file {path} is missing")
    return objects, sorted(views, key=lambda v: v.index), total


# --- JSON documents ------------------------------------------------------------


def categories(objects: list[DSTObject]) -> list[dict[str, Any]]:
    """One category per class (in order of first appearance); keypoints: the 8 corners, then the class's own."""
    out: dict[str, dict[str, Any]] = {}
    for obj in objects:
        cat = out.setdefault(
            obj.class_name,
            {"id": len(out) + 1, "name": obj.class_name, "supercategory": "object", "keypoints": list(CORNER_NAMES), "skeleton": []},
        )
        cat["keypoints"] += [k for k in obj.keypoint_names if k not in cat["keypoints"]]
    return list(out.values())


def view_files(name: str) -> dict[str, str]:
    """Per-view file paths relative to the data set folder."""
    return {kind: f"{folder}/{name}{ext}" for kind, (folder, ext) in VIEW_FILES.items()}


def _float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _points(a: np.ndarray) -> list[list[float | None]]:
    return [[_float(x) for x in row] for row in np.asarray(a, np.float64)]


def view_record(view: DSTView, obj: DSTObject, width: int, height: int, empty: bool) -> dict[str, Any]:
    """The view as dataset.json keeps it."""
    return {
        "name": view.name,
        "index": view.index,
        "object_index": view.object_index,
        "object": obj.name,
        "azimuth": float(view.azimuth),
        "polar": float(view.polar),
        "elevation": 90.0 - float(view.polar),
        "inplane": float(view.inplane),
        "distance": float(view.distance),
        "lens_mm": float(view.lens_mm),
        "sensor_mm": float(view.sensor_mm),
        "camera_matrix": np.asarray(view.camera_matrix, np.float64).tolist(),
        "corners": np.asarray(view.corners, np.float64).tolist(),
        "keypoints": {k: np.asarray(v, np.float64).tolist() for k, v in sorted(view.keypoints.items())},
        "width": width,
        "height": height,
        "empty": empty,
    }


def image_record(view: DSTView, obj: DSTObject, width: int, height: int) -> dict[str, Any]:
    files = view_files(view.name)
    return {
        "id": view.index + 1,
        "file_name": files["image"],
        "width": width,
        "height": height,
        "edge_file": files["edges"],
        "mask_file": files["mask"],
        "depth_file": files["depth"],
        "view": view.name,
        "view_index": view.index,
        "object": obj.name,
        "class_name": obj.class_name,
        "tags": list(obj.tags),
        "azimuth": float(view.azimuth),
        "elevation": 90.0 - float(view.polar),
        "polar": float(view.polar),
        "theta": float(view.inplane),
        "distance": float(view.distance),
        "lens_mm": float(view.lens_mm),
        "sensor_mm": float(view.sensor_mm),
    }


def annotation_record(view: DSTView, category: dict[str, Any], ann: ViewAnnotation, points_3d: list[Any]) -> dict[str, Any]:
    flat: list[float] = []
    for (u, v), vis in zip(ann.points_2d, ann.visibility):
        flat += [float(u), float(v), 2] if vis == 2 else [float(u), float(v), 1] if vis == 1 else [0.0, 0.0, 0]
    return {
        "id": view.index + 1,
        "image_id": view.index + 1,
        "category_id": category["id"],
        "bbox": ann.bbox,
        "area": ann.area,
        "iscrowd": 0,
        "segmentation": ann.rle,
        "num_keypoints": int((ann.visibility > OUTSIDE).sum()),
        "keypoints": flat,
        "keypoints_3d": points_3d,
        "azimuth": float(view.azimuth),
        "elevation": 90.0 - float(view.polar),
        "theta": float(view.inplane),
        "distance": float(view.distance),
        "K": ann.k.tolist(),
        "R": ann.r.tolist(),
        "t": ann.t.tolist(),
        "corners_2d": _points(ann.points_2d[:8]),
        "corners_visibility": [int(x) for x in ann.visibility[:8]],
    }


def coco_document(objects: list[DSTObject], images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "info": {"description": "Diffusion 3D: 3D-DST renders with 3D annotations", "format": FORMAT, "version": FORMAT_VERSION},
        "licenses": [],
        "categories": categories(objects),
        "images": sorted(images, key=lambda r: r["id"]),
        "annotations": sorted(annotations, key=lambda r: r["id"]),
    }


def common_record(request: DSTAnnotateRequest, objects: list[DSTObject], total: int) -> dict[str, Any]:
    """The part of dataset.json every shard of one data set shares."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "engine_version": __version__,
        "conventions": CONVENTIONS,
        "settings": {
            "edge_method": request.edge_method,
            "canny": {
                "low": float(request.canny_low),
                "high": float(request.canny_high),
                "aperture": 3,
                "input": "RGBA over black, B G R channels",
            },
            "crease_deg": float(request.crease_deg),
            "depth_jump": float(request.depth_jump),
            "alpha_threshold": ALPHA_THRESHOLD,
            "occlusion_tolerance": float(request.occlusion_tolerance),
        },
        "parameters": request.parameters,
        "objects": [asdict(o) for o in objects],
        "total_views": total,
    }


def dataset_document(common: dict[str, Any], views: list[dict[str, Any]], shard: str = "") -> dict[str, Any]:
    ordered = sorted(views, key=lambda v: v["index"])
    doc = dict(common, views=ordered, empty_views=[v["name"] for v in ordered if v["empty"]])
    if shard:
        doc["shard"] = shard
    return doc


def load_json(path: Path) -> dict[str, Any]:
    """A data set's JSON document, with a readable error when it is missing or damaged."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path.parent} is not a 3D-DST data set: {path.name} is missing (render edge maps first)") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"Cannot read {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path} is not a JSON object")
    return doc


def json_text(document: dict[str, Any]) -> str:
    """The one serialisation of both files: sorted keys, so equal content gives equal bytes."""
    return json.dumps(document, indent=1, sort_keys=True, allow_nan=False) + "\n"


def write_text(text: str) -> Callable[[Path], object]:
    return lambda path: path.write_text(text, encoding="utf-8")


# --- the job -------------------------------------------------------------------


def make_folders(root: Path) -> list[Path]:
    """Create the data set folders; returns those that did not exist (to remove on failure)."""
    created = []
    for folder in [root] + [root / f for f, _ in VIEW_FILES.values()]:
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"{folder} is a file, not a folder")
        if not folder.exists():
            folder.mkdir(parents=True)
            created.append(folder)
    return created


def remove_if_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            pass


def annotate_views(request: DSTAnnotateRequest, report: Reporter) -> DSTAnnotateResult:
    """Read each view's render files, annotate it and write the data set, all or nothing."""
    objects, views, total = checked_request(request)
    cats = {c["name"]: c for c in categories(objects)}
    settings = EdgeSettings(request.edge_method, request.canny_low, request.canny_high, request.crease_deg, request.depth_jump)
    root = Path(request.dataset_dir)
    targets = [root / rel for v in views for rel in view_files(v.name).values()] + [root / ANNOTATIONS_JSON, root / DATASET_JSON]
    created = make_folders(root)
    report.total = len(views)
    images, annotations, records, warnings = [], [], [], []
    try:
        with NewFiles(targets, request.overwrite) as files:
            for number, view in enumerate(views, 1):
                obj = objects[view.object_index]
                category = cats[obj.class_name]
                render = read_view_render(request.render_dir, view.name)
                width, height = render.size
                names = category["keypoints"]
                points = np.zeros((len(names), 3))
                points[:8] = view.corners
                given = np.zeros(len(names), bool)
                given[:8] = True
                for kp, xyz in view.keypoints.items():
                    points[names.index(kp)] = xyz
                    given[names.index(kp)] = True
                size = float(np.ptp(view.corners, axis=0).max()) or 1.0
                ann = annotate_view(
                    render, view.camera_matrix, view.lens_mm, view.sensor_mm, points, size, settings, request.occlusion_tolerance
                )
                ann.visibility[~given] = OUTSIDE
                empty = ann.area == 0
                images.append(image_record(view, obj, width, height))
                records.append(view_record(view, obj, width, height, empty))
                if empty:
                    warnings.append(f"View {view.name!r}: the object is not in the image (empty mask); kept without an annotation")
                else:
                    points_3d = [p.tolist() if g else None for p, g in zip(points, given)]
                    annotations.append(annotation_record(view, category, ann, points_3d))
                _stage_view(files, root, view.name, render_paths(request.render_dir, view.name)[0], ann)
                report.step(f"Annotated view {number} of {len(views)}: {view.name}")
            if not annotations:
                raise BadInput(
                    f"None of the {len(views)} views shows the object (every mask is empty): check the camera distance and that the object renders"
                )
            coco = coco_document(objects, images, annotations)
            dataset = dataset_document(common_record(request, objects, total), records, request.shard)
            files.write(root / ANNOTATIONS_JSON, write_text(json_text(coco)))
            files.write(root / DATASET_JSON, write_text(json_text(dataset)))
    except BaseException:
        remove_if_empty(created)
        raise
    return DSTAnnotateResult(
        dataset_dir=str(root),
        views=len(views),
        images=len(images),
        annotations=len(annotations),
        empty_views=[r["name"] for r in records if r["empty"]],
        warnings=warnings,
        files=[str(p) for p in targets],
    )


def _stage_view(files: NewFiles, root: Path, name: str, render_png: Path, ann: ViewAnnotation) -> None:
    paths = {kind: root / rel for kind, rel in view_files(name).items()}
    files.write(paths["image"], lambda p: copy_png(render_png, p))
    files.write(paths["edges"], lambda p: write_png(p, ann.edges))
    files.write(paths["mask"], lambda p: write_png(p, np.where(ann.mask, 255, 0).astype(np.uint8)))
    files.write(paths["depth"], lambda p: write_exr(p, {"Y": ann.depth}))
