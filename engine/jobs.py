"""Every job the engine runs: its request and result types, and one way to run it.

Both transports call :func:`run_job`, so a job behaves the same in Blender's
process and in the worker; only how requests and events travel differs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from . import depth as depthlib
from .capture import CaptureRequest, CaptureResult, capture_origin, encode_capture
from .dst.dataset import DSTAnnotateRequest, DSTAnnotateResult, annotate_views
from .dst.filter import KCFRequest, KCFResult, filter_dataset
from .dst.generate import EdgeGenerationRequest, EdgeGenerationResult, generate_from_edges
from .dst.merge import DSTMergeRequest, DSTMergeResult, merge_shards
from .errors import BadInput, JobCancelled
from .info import InfoRequest, InfoResult, engine_info
from .model_listing import ModelsRequest, ModelsResult, list_models
from .ldm3d import RGBDRequest, RGBDResult, generate_rgbd
from .parallax import safe_radius
from .progress import CancelToken, ProgressCallback, Reporter
from .stereo_video import VideoRequest, VideoResult, finish_video
from .world_sphere import build_world_sphere


@dataclass
class WorldSphereRequest:
    depth: Optional[np.ndarray]  # H×W metric distances or relative disparity in [0, 1]; None: read depth_path
    rgb_size: tuple[int, int]  # (width, height) of the colour panorama it will wear
    depth_path: str = ""  # a depth file (EXR, .npy, HDR, TIFF, PNG, …) the engine reads instead of ``depth``
    depth_mode: str = depthlib.AUTO  # AUTO: METRIC for float files, RELATIVE for 8/16-bit ones
    relative_mapping: str = depthlib.OFFSET
    radius: float = 5.0  # OFFSET: distance of disparity 0.5
    strength: float = 1.0  # OFFSET: how far disparity moves a vertex, in [0, 2)
    near: float = 1.0  # INVERSE: distance of disparity 1
    far: float = 10.0  # INVERSE: distance of disparity 0
    step: int = 1  # grid resolution: every step-th pixel (1 full, 2 half, 4 quarter)
    discontinuity: float = 0.0  # drop faces whose far/near corner ratio exceeds 1 + this; 0 keeps all


@dataclass
class WorldSphereResult:
    vertices: np.ndarray
    face_starts: np.ndarray
    corner_verts: np.ndarray
    corner_uvs: np.ndarray
    edge_verts: np.ndarray
    corner_edges: np.ndarray
    rows: int = 0
    cols: int = 0
    dropped_faces: int = 0
    min_distance: float = 0.0
    median_distance: float = 0.0
    max_distance: float = 0.0
    safe_radius: float = 0.0  # how far a viewpoint may move from the centre (see parallax)
    depth_mode: str = ""  # the mode used (AUTO resolved)
    depth_kind: str = ""  # how the depth was stored: "float EXR", "16-bit PNG", "array", …
    capture_origin: list[float] = field(default_factory=list)  # where a captured depth was taken; [] otherwise


def world_sphere(request: WorldSphereRequest, report: Reporter) -> WorldSphereResult:
    report.total = 3
    if request.depth_path:
        stored = depthlib.read_depth_file(request.depth_path)
        depth, kind, mode = stored.values, stored.kind, depthlib.resolve_mode(request.depth_mode, stored.mode)
    elif request.depth is not None:
        depth, kind, mode = np.asarray(request.depth), "array", request.depth_mode
        if mode == depthlib.AUTO:
            depth, mode = depthlib.as_stored(depth)
    else:
        raise BadInput("The world sphere needs a depth panorama (a file or an array)")
    height, width = depth.shape[:2]
    if tuple(request.rgb_size) != (width, height):
        rw, rh = request.rgb_size
        raise BadInput(f"RGB ({rw}×{rh}) and depth ({width}×{height}) must be the same size")
    if width != 2 * height:
        raise BadInput(f"An equirectangular panorama is 2:1 (width = 2 × height), got {width}×{height}")
    dist = depthlib.distances(
        depth,
        mode,
        mapping=request.relative_mapping,
        radius=request.radius,
        strength=request.strength,
        near=request.near,
        far=request.far,
    )
    report.step("Depth to distance")
    mesh = build_world_sphere(dist, request.step, request.discontinuity)
    report.step("Building the mesh")
    result = WorldSphereResult(
        vertices=mesh.vertices,
        face_starts=mesh.face_starts,
        corner_verts=mesh.corner_verts,
        corner_uvs=mesh.corner_uvs,
        edge_verts=mesh.edge_verts,
        corner_edges=mesh.corner_edges,
        rows=mesh.grid_shape[0],
        cols=mesh.grid_shape[1],
        dropped_faces=mesh.dropped_faces,
        min_distance=float(dist.min()),
        median_distance=float(np.median(dist)),
        max_distance=float(dist.max()),
        safe_radius=safe_radius(dist),
        depth_mode=mode,
        depth_kind=kind,
        capture_origin=capture_origin(request.depth_path) if request.depth_path else [],
    )
    report.step("Done")
    return result


@dataclass
class EchoRequest:
    """Diagnostics: send arrays back, optionally in paced steps (transport checks, benchmarks)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    steps: int = 0
    seconds_per_step: float = 0.0
    fail_with: str = ""  # raise this message instead of returning, to test error paths


@dataclass
class EchoResult:
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    steps_done: int = 0


def echo(request: EchoRequest, report: Reporter) -> EchoResult:
    report.total = max(request.steps, 1)
    for i in range(request.steps):
        time.sleep(request.seconds_per_step)
        report.step(f"Step {i + 1} of {request.steps}", preview=np.full((2, 4, 3), i % 256, np.uint8))
    if request.fail_with:
        raise RuntimeError(request.fail_with)
    return EchoResult(arrays=dict(request.arrays), steps_done=request.steps)


class Job(NamedTuple):
    request: type
    result: type
    run: Callable[[Any, Reporter], Any]


JOBS: dict[str, Job] = {
    "world_sphere": Job(WorldSphereRequest, WorldSphereResult, world_sphere),
    "encode_capture": Job(CaptureRequest, CaptureResult, encode_capture),
    "engine_info": Job(InfoRequest, InfoResult, engine_info),
    "list_models": Job(ModelsRequest, ModelsResult, list_models),
    "generate_rgbd": Job(RGBDRequest, RGBDResult, generate_rgbd),
    "finish_video": Job(VideoRequest, VideoResult, finish_video),
    "annotate_views": Job(DSTAnnotateRequest, DSTAnnotateResult, annotate_views),
    "merge_shards": Job(DSTMergeRequest, DSTMergeResult, merge_shards),
    "generate_from_edges": Job(EdgeGenerationRequest, EdgeGenerationResult, generate_from_edges),
    "filter_dataset": Job(KCFRequest, KCFResult, filter_dataset),
    "echo": Job(EchoRequest, EchoResult, echo),
}


def job(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise BadInput(f"Unknown engine job {name!r} (known: {', '.join(sorted(JOBS))})") from None


#: How a failure is labelled when it crosses a transport.
CANCELLED, BAD_INPUT, FAILED = "cancelled", "bad_input", "failed"


def failure_kind(exc: BaseException) -> str:
    if isinstance(exc, JobCancelled):
        return CANCELLED
    if isinstance(exc, BadInput):
        return BAD_INPUT
    return FAILED


def run_job(name: str, request: Any, emit: ProgressCallback, token: CancelToken) -> Any:
    """Run ``name`` on ``request``, reporting through ``emit`` and honouring ``token``."""
    spec = job(name)
    if not isinstance(request, spec.request):
        raise BadInput(f"Job {name!r} takes a {spec.request.__name__}, got {type(request).__name__}")
    token.check()
    return spec.run(request, Reporter(emit, token))

