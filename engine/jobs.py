"""Every job the engine runs, by name: its request and result types and its function; and one way to run it.

Both transports call :func:`run_job`, so a job behaves the same in Blender's
process and in the worker; only how requests and events travel differs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from .dst.dataset import DSTAnnotateRequest, DSTAnnotateResult, annotate_views
from .dst.filter import KCFRequest, KCFResult, filter_dataset
from .dst.generate import EdgeGenerationRequest, EdgeGenerationResult, generate_from_edges
from .dst.merge import DSTMergeRequest, DSTMergeResult, merge_shards
from .echo import EchoRequest, EchoResult, echo
from .errors import BadInput, JobCancelled
from .info import InfoRequest, InfoResult, engine_info
from .install.setup import EngineSetupRequest, EngineSetupResult, engine_setup
from .multiview.job import ViewsRequest, ViewsResult, generate_views
from .params import validate
from .progress import CancelToken, ProgressCallback, Reporter
from .viewneti.original import ImportRequest, ImportResult, import_original
from .viewneti.posed import PosedSetRequest, PosedSetResult, write_posed_set
from .viewneti.render import RenderViewRequest, RenderViewResult, render_view
from .viewneti.single_image import ImageViewsRequest, ImageViewsResult, views_from_image
from .viewneti.train import TrainRequest, TrainResult, train_viewneti
from .world.capture import CaptureRequest, CaptureResult, encode_capture
from .world.export import ExportRequest, ExportResult, export_world
from .world.ldm3d import RGBDRequest, RGBDResult, generate_rgbd
from .world.model_listing import ModelsRequest, ModelsResult, list_models
from .world.splats import SplatRequest, SplatResult, splats_from_rgbd
from .world.stereo_video import VideoRequest, VideoResult, finish_video
from .world.upscale import UpscaleRequest, UpscaleResult, upscale_rgbd
from .world.world_sphere import WorldSphereRequest, WorldSphereResult, sphere_from_depth


class Job(NamedTuple):
    request: type
    result: type
    run: Callable[[Any, Reporter], Any]


JOBS: dict[str, Job] = {
    "world_sphere": Job(WorldSphereRequest, WorldSphereResult, sphere_from_depth),
    "rgbd_splats": Job(SplatRequest, SplatResult, splats_from_rgbd),
    "export_world": Job(ExportRequest, ExportResult, export_world),
    "encode_capture": Job(CaptureRequest, CaptureResult, encode_capture),
    "engine_info": Job(InfoRequest, InfoResult, engine_info),
    "engine_setup": Job(EngineSetupRequest, EngineSetupResult, engine_setup),
    "list_models": Job(ModelsRequest, ModelsResult, list_models),
    "generate_rgbd": Job(RGBDRequest, RGBDResult, generate_rgbd),
    "upscale_rgbd": Job(UpscaleRequest, UpscaleResult, upscale_rgbd),
    "finish_video": Job(VideoRequest, VideoResult, finish_video),
    "annotate_views": Job(DSTAnnotateRequest, DSTAnnotateResult, annotate_views),
    "merge_shards": Job(DSTMergeRequest, DSTMergeResult, merge_shards),
    "generate_from_edges": Job(EdgeGenerationRequest, EdgeGenerationResult, generate_from_edges),
    "filter_dataset": Job(KCFRequest, KCFResult, filter_dataset),
    "generate_views": Job(ViewsRequest, ViewsResult, generate_views),
    "train_viewneti": Job(TrainRequest, TrainResult, train_viewneti),
    "render_view": Job(RenderViewRequest, RenderViewResult, render_view),
    "write_posed_set": Job(PosedSetRequest, PosedSetResult, write_posed_set),
    "import_viewneti": Job(ImportRequest, ImportResult, import_original),
    "views_from_image": Job(ImageViewsRequest, ImageViewsResult, views_from_image),
    "echo": Job(EchoRequest, EchoResult, echo),
}


def job(name: str) -> Job:
    try:
        return JOBS[name]
    except KeyError:
        raise BadInput(f"Unknown engine job {name!r} (known: {', '.join(sorted(JOBS))})") from None


#: How a failure is labelled when it crosses a transport.
CANCELLED, BAD_INPUT, FAILED = "cancelled", "bad_input", "failed"


def request_defaults(request: type) -> dict[str, Any]:
    """A request's field defaults: what the operators' properties and batch.py's options default to, written once here."""
    return {f.name: f.default for f in dataclasses.fields(request) if f.default is not dataclasses.MISSING}


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
    warnings = validate(request)  # the caller checked it too, naming its own options; a worker or a Ray task checks again here
    token.check()
    report = Reporter(emit, token)
    for warning in warnings:
        report.note(warning)
    return spec.run(request, report)
