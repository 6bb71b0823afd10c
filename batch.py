"""Headless jobs: ``blender -b [file.blend] --python batch.py -- SUBCOMMAND …``
or ``python batch.py SUBCOMMAND …`` with a Python that has the ``bpy`` module.

A thin driver over the jobs table, :data:`COMMANDS`. A subcommand's options are
the declared parameters of its requests (``engine/params.py``, turned into
options by ``engine/cli.py``): the same requests the panel and the console
build, checked by the same ``validate`` before any work. A subcommand runs its
operator when it reads or writes Blender data, else the engine job directly; a
few chain several (demo, panoramas, stereo-video, dst). With ``--ray`` it runs
as shards on a Ray cluster (``engine/distributed``), each shard carrying the
request. It prints progress, then one JSON summary line last on stdout; on
error one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent
ADDON = "diffusion3d"
NEEDS_BLENDER = "error: this needs Blender: run it with blender -b --python batch.py -- …, or a Python with the bpy module"


class BatchError(Exception):
    """A reason to stop, printed as one line."""


def script_args(argv: list[str]) -> list[str]:
    """Arguments meant for us: after ``--`` under Blender, else after the script name."""
    return argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]


def addon_package() -> ModuleType:
    """This folder as the package ``diffusion3d``, whatever the folder is called.

    Its ``__init__.py`` imports nothing of Blender, so the parser can read the
    engine's declarations before (and without) ``bpy``; :func:`load_addon` then
    enables the same package.
    """
    if ADDON not in sys.modules:
        spec = importlib.util.spec_from_file_location(ADDON, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[ADDON] = module
        spec.loader.exec_module(module)
        module.__time__ = os.path.getmtime(ROOT / "__init__.py")  # addon_utils would otherwise try to reload it
    return sys.modules[ADDON]


if TYPE_CHECKING:  # mypy knows the add-on's modules by their folder names
    from engine import cli, errors, interrupts, jobs, params, progress, protocol, runtime
    from engine.distributed import driver, sharding
    from engine.dst import filter as dst_filter
    from engine.dst.dataset import EVERY_VISIBLE_MESH
    from engine.world import demo as world_demo
    from engine.world import prompt_lists, stereo_rig
    from engine.world.export import AlsoExport
else:  # one copy of the engine: the add-on's, as Blender will enable it
    addon_package()
    try:
        from diffusion3d.engine import cli, errors, interrupts, jobs, params, progress, protocol, runtime
        from diffusion3d.engine.distributed import driver, sharding
        from diffusion3d.engine.dst import filter as dst_filter
        from diffusion3d.engine.dst.dataset import EVERY_VISIBLE_MESH
        from diffusion3d.engine.world import demo as world_demo
        from diffusion3d.engine.world import prompt_lists, stereo_rig
        from diffusion3d.engine.world.export import AlsoExport
    except ModuleNotFoundError as exc:  # the engine's numpy: Blender has it, a plain Python may not
        if exc.name != "numpy":
            raise
        print(NEEDS_BLENDER, file=sys.stderr)
        raise SystemExit(2) from None

param = params.param


# What batch.py adds to the jobs' requests: a scene to open, one to save, the engine's Python, the dst chain's end ----


@dataclass
class Scene:
    blend: str = param("", "Blend", "The .blend to open first (default: the file Blender was started with)", path=params.INPUT_FILE)


@dataclass
class Save:
    save: str = param("", "Save", "Also write the scene to this .blend", path=params.OUTPUT_FILE)
    overwrite: bool = params.overwrite_field()

    def check(self) -> list[params.Note]:
        if self.save and Path(self.save).exists() and not self.overwrite:
            params.refuse("save", "already exists (--overwrite replaces it)")
        return []


@dataclass
class Engine:
    help = "Run model jobs in a worker with this Python (one with torch: requirements-engine.txt); env DIFFUSION3D_ENGINE_PYTHON"
    engine_python: str = param(os.environ.get("DIFFUSION3D_ENGINE_PYTHON", ""), "Engine Python", help, path=params.INPUT_FILE)


@dataclass
class Console:
    verbose: bool = param(False, "Verbose", "Also show Blender's own log (its render statistics) beside the progress lines")
    debug: bool = param(False, "Debug", "On an error, show its traceback too")


ADDED = (Scene, Save, Engine, Console, AlsoExport, driver.ClusterOptions)  # batch.py's own parts (a Ray shard gets all but the last)


# Running requests: through their operator (Blender data) or as the engine job --------------------------------------


@dataclass
class Run:
    requests: list[Any]
    values: dict[str, Any]  # the options as given (None where a default stands in)
    naming: params.Naming
    timings: dict[str, float] = field(default_factory=dict)

    def part(self, cls: type) -> Any:
        return next((r for r in self.requests if isinstance(r, cls)), None)

    def timed(self, name: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = work()
        self.timings[name] = round(time.perf_counter() - start, 3)
        return value


def load_addon() -> Any:
    """Register the add-on from this folder under the name ``diffusion3d`` and enable it."""
    import addon_utils
    import bpy

    module = addon_package()
    if not hasattr(bpy.types.Scene, "diffusion3d") and addon_utils.enable(ADDON, default_set=True, handle_error=_raise) is None:
        raise BatchError(f"Could not enable the add-on from {ROOT}")
    return module


def _raise(exc: BaseException) -> None:
    raise exc


def operator(idname: str, request: Any, naming: params.Naming) -> dict[str, Any]:
    """The operator on the request's values, its refusals naming our options; what it made (bpy.ops raises its error report)."""
    import bpy

    from diffusion3d.operators.machinery import declared, job  # type: ignore[import-not-found]

    job.current.naming = naming
    try:
        result = getattr(bpy.ops.diffusion3d, idname)(**declared.keywords(request))
    finally:
        job.current.naming = params.label_name
    if "FINISHED" not in result:
        raise BatchError(f"{idname} did not finish ({', '.join(result)})")
    return dict(job.current.summary)


def engine_job(name: str, request: Any) -> Any:
    """An engine job through the add-on's client (Blender's Python or the worker), its progress printed."""
    from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

    return session.client().run(name, request, on_progress=progress.printer(name))


def save_blend(path: Path) -> str:
    import bpy

    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path.resolve()), check_existing=False)
    return str(path.resolve())


def by_operator(idname: str, timing: str) -> Callable[[Run], dict[str, Any]]:
    """The command's request through its operator; the scene saved after, if asked (its path among the paths, or beside them)."""

    def run(r: Run) -> dict[str, Any]:
        summary = r.timed(timing, lambda: operator(idname, r.requests[0], r.naming))
        if getattr(r.part(Save), "save", ""):
            saved = save_blend(Path(r.part(Save).save))
            (summary["paths"] if isinstance(summary.get("paths"), dict) else summary)["blend"] = saved
        return summary

    return run


def by_engine(job: str, timing: str) -> Callable[[Run], dict[str, Any]]:
    """The command's request as the engine job (it needs no Blender data): its result's summary."""
    return lambda r: r.timed(timing, lambda: engine_job(job, r.requests[0])).summary()  # type: ignore[no-any-return]


# The subcommands that chain jobs -----------------------------------------------------------------------------------------


def sphere(r: Run) -> dict[str, Any]:
    """The world sphere, exported too if asked (refused first if its file is there and not to be replaced)."""
    export = r.part(AlsoExport).request(r.part(Save).overwrite)
    summary = by_operator("build_world_sphere", "sphere")(r)
    if export is not None:
        summary["paths"]["export"] = r.timed("export", lambda: operator("export_world", export, r.naming))["paths"]["export"]
    return summary


def panorama(r: Run) -> dict[str, Any]:
    """LDM3D, building the world sphere when the scene is saved."""
    gen = r.requests[0]
    r.requests[0] = dataclasses.replace(gen, build_sphere=bool(r.part(Save).save) and gen.projection == "EQUIRECTANGULAR")
    return by_operator("generate_panorama", "generate")(r)


def panoramas(r: Run) -> dict[str, Any]:
    """One panorama per prompt line, each in its own folder (made ones skipped), each world saved on its own if asked."""
    import bpy

    listing, gen = r.requests[0], r.requests[1]
    out, made, skipped = Path(listing.out_dir).resolve(), [], []
    chosen = prompt_lists.select(prompt_lists.read_prompts(Path(listing.prompts), gen.seed), listing.shard, listing.lines)
    sphere = listing.save_blend and gen.projection == "EQUIRECTANGULAR"
    line = progress.ProgressLine("Panoramas", len(chosen))
    for done, prompt in enumerate(chosen, start=1):
        folder = out / prompt.folder
        if (folder / "meta.json").is_file() and not gen.overwrite:
            skipped.append(prompt.number)
        else:
            one = dataclasses.replace(gen, prompt=prompt.text, seed=prompt.seed, out_dir=str(folder), build_sphere=sphere)
            r.timed("generate", lambda: operator("generate_panorama", one, r.naming))  # noqa: B023  # called at once
            if sphere:
                save_blend(folder / "world.blend")
                bpy.ops.wm.read_homefile(use_empty=True)  # the next prompt's .blend holds only its own world
            made.append(prompt.number)
        line.show(done, prompt.folder)
    return {"paths": {"folder": str(out)}, "prompts": [p.number for p in chosen], "made": made, "skipped": skipped}


def stereo_video(r: Run) -> dict[str, Any]:
    """The scene's stereo rig (added at the world sphere if there is none; --ipd sets an existing one's), moved, rendered."""
    import bpy

    from diffusion3d.operators.stereo_rig import RIG_KEY, rig_camera  # type: ignore[import-not-found]

    rig, video = r.part(stereo_rig.RigRequest), r.requests[2]
    rigs = [o for o in bpy.context.scene.objects if o.get(RIG_KEY) is not None]
    if not rigs:
        r.timed("rig", lambda: operator("add_stereo_rig", rig, r.naming))
    elif r.values.get("interocular") is not None:
        if len(rigs) != 1:
            raise BatchError("--ipd needs one stereo rig in the scene")
        rig_camera(rigs[0]).data.stereo.interocular_distance = rig.interocular * rig.scene_scale
    operator("animate_rig", r.part(stereo_rig.MoveRequest), r.naming)
    summary = r.timed("render", lambda: operator("render_stereo_video", video, r.naming))
    r.timings["per_frame"] = round(r.timings["render"] / summary["frames"], 3)
    return {**summary, "projection": video.projection.lower()}


def edges(r: Run) -> dict[str, Any]:
    summary = by_operator("render_edge_maps", "edges")(r)
    r.timings["per_view"] = round(r.timings["edges"] / max(summary["views"], 1), 3)
    return {**summary, "shard": r.requests[0].shard}


def dst(r: Run) -> dict[str, Any]:
    """edges, generate-from-edges and kcf, one after another in this process, on one data set."""
    render, generation, filtering, chain = r.requests[:4]
    summary = {**by_operator("render_edge_maps", "edges")(r), "shard": render.shard}
    summary["generated_images"] = r.timed("generate", lambda: engine_job("generate_from_edges", generation)).images
    if chain.filter and not render.shard:
        summary["rejected"] = r.timed("kcf", lambda: engine_job("filter_dataset", filtering)).summary()["rejected"]
    return summary


def demo(r: Run) -> dict[str, Any]:
    import bpy

    from diffusion3d.operators.demo.run import run_demo  # type: ignore[import-not-found]

    bpy.ops.wm.read_factory_settings(use_empty=True)  # the preferences too: set them again
    load_addon()
    use_model_settings(r.requests)
    return run_demo(r.requests[0], r.requests[1], r.timed)  # type: ignore[no-any-return]


# The jobs table --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    parts: tuple[type, ...]  # the declared requests: the options, and what the run gets (the job's first)
    run: Callable[[Run], dict[str, Any]]
    hide: tuple[str, ...] = ()  # parameters the command does not offer
    defaults: dict[str, Any] = field(default_factory=dict)  # where the command's defaults are not the requests'
    shards: str = ""  # how it runs on Ray: its function in engine/distributed/sharding.py
    lazy: tuple[type, ...] = ()  # parts whose models are checked only if the run uses them (by their operator)
    later: tuple[type, ...] = ()  # parts whose input a step before makes: their paths are checked when they run

    @property
    def requests(self) -> tuple[type, ...]:
        """Its parts, with the engine's Python for model jobs and the cluster's options for jobs that shard."""
        models = any("access" in {f.name for f in dataclasses.fields(part)} for part in self.parts)
        return (*self.parts, *((Engine,) if models else ()), Console, *((driver.ClusterOptions,) if self.shards else ()))


def request(job: str) -> type:
    return jobs.job(job).request


RGBD, DST, GENERATE, FILTER = request("generate_rgbd"), request("annotate_views"), request("generate_from_edges"), request("filter_dataset")
PANO = {"model": os.environ.get("DIFFUSION3D_LDM3D_PANO", "") or params.defaults(RGBD)["model"]}
INIT_FILES = ("init_rgb_path", "init_depth_path", "depth_estimator")  # img2img's inputs (demo and panoramas have none)
ALL_VISIBLE = {"object_names": EVERY_VISIBLE_MESH}  # the command line has no selection to speak of
C = Command
COMMANDS: tuple[Command, ...] = (
    C("capture", "an RGBD 360° panorama of a .blend (rgb.png, depth.exr, depth16.png, meta.json)", (request("encode_capture"), Scene), by_operator("capture_panorama", "capture")),
    C("sphere", "a displaced world sphere from an RGB and a depth panorama", (request("world_sphere"), Scene, Save, AlsoExport), sphere),
    C("export", "a .blend's world sphere (or a mesh) → glTF/GLB, USDZ/USDC, or Gaussian splats (.ply)", (request("export_world"), Scene), by_operator("export_world", "export")),
    C("splats", "an RGB and a depth panorama → 3D Gaussian splats (.ply, the 3DGS reference layout)", (request("rgbd_splats"),), by_engine("rgbd_splats", "splats")),
    C("demo", "furnished room → RGBD capture → world sphere → world.blend, previews, stereo video (offline)", (world_demo.DemoRequest, RGBD), demo, ("projection", "height", *INIT_FILES), {"model": os.environ.get("DIFFUSION3D_LDM3D_PANO", "")}, lazy=(RGBD,)),
    C("panorama", "text (or RGB + depth) → an RGBD panorama with LDM3D (rgb.png, depth16.png, depth.npy, meta.json)", (RGBD, Save), panorama, (), PANO),
    C("panoramas", "one LDM3D panorama per line of a prompt file (prompt-NNNN/ folders)", (prompt_lists.PanoramasRequest, RGBD), panoramas, ("prompt", "count", "strength", *INIT_FILES), PANO, "panoramas"),
    C("upscale", "an RGB image and its depth → 2× or 4× with LDM3D-sr, seamless for panoramas", (request("upscale_rgbd"),), by_engine("upscale_rgbd", "upscale")),
    C("stereo-video", "a stereo rig moving in the world sphere → a 360° or VR180 stereo video with spatial metadata", (stereo_rig.RigRequest, stereo_rig.MoveRequest, request("finish_video"), Scene), stereo_video, (), {"interocular": None}),
    C("edges", "3D-DST: scene objects from sampled viewpoints → images, edge maps, masks, depth, COCO annotations", (DST, Scene), edges, (), ALL_VISIBLE, "edges"),
    C("generate-from-edges", "3D-DST: ControlNet images from a data set's edge maps, sharing their 3D annotations", (GENERATE,), by_engine("generate_from_edges", "generate"), shards="generate_from_edges"),
    C("kcf", "3D-DST K-fold consistency filter: score generated images, move the worst to rejected/", (FILTER,), by_engine("filter_dataset", "kcf"), shards="kcf"),
    C("dst", "3D-DST end to end: views, edge maps, annotations → ControlNet images → K-fold filter", (DST, GENERATE, FILTER, dst_filter.Chain, Scene), dst, ("out_dir", "scores_dir"), ALL_VISIBLE, "dst", later=(GENERATE, FILTER)),
    C("merge", "join shard data sets (edges/generate-from-edges --shard) into one", (request("merge_shards"),), by_engine("merge_shards", "merge")),
    C("multiview", "one object image (or a .blend object) → four views with their cameras (ImageDream; MVDream from text)", (request("generate_views"), Scene, Save), by_operator("generate_views", "generate")),
    C("viewneti-data", "ViewNeTI: a .blend's objects from cameras around them → a posed image set", (request("write_posed_set"), Scene), by_operator("render_training_views", "render")),
    C("viewneti-train", "ViewNeTI: fit view and object mappers to posed image sets (a frozen SD 2.x)", (request("train_viewneti"),), by_engine("train_viewneti", "train")),
    C("viewneti-render", "ViewNeTI: a checkpoint's view from a .blend's camera or an orbit position", (request("render_view"), Scene), by_operator("generate_view", "render"), ("orbits",)),
    C("viewneti-nvs", "ViewNeTI: one object image → new views (a pre-trained view mapper frozen)", (request("views_from_image"),), by_engine("views_from_image", "total")),
    C("engine-setup", "a managed engine Python: the torch build for this machine and the engine's packages, checked", (request("engine_setup"),), by_engine("engine_setup", "setup")),
    C("viewneti-import", "ViewNeTI: the original's mapper-steps-*.pt files → our checkpoint (pickles: opt in)", (request("import_viewneti"),), by_engine("import_viewneti", "import")),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch.py", description="Diffusion 3D headless jobs (blender -b [file.blend] --python batch.py -- …)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.set_defaults(spec=command, options=cli.add_options(p, command.requests, command.hide, command.defaults))
        p.add_argument("--request", help=argparse.SUPPRESS)  # a Ray shard's requests, as JSON
    cli.one_line_errors(parser)
    return parser


def requests_of(command: Command, options: cli.Options, args: argparse.Namespace) -> list[Any]:
    """The command's requests from its options, or a shard's from ``--request`` (its own --shard and --out set on them)."""
    values = options.values(args)
    if not args.request:
        if options.missing(args):
            raise BatchError(f"the following arguments are required: {', '.join(options.missing(args))}")
        return [params.build(cls, values) for cls in command.requests]
    given = json.loads(args.request)
    own = {name: values[name] for name, flag in options.flags.items() if flag in ("--shard", "--out") and name in values}
    decoded = [protocol.decode_as(cls, given[cls.__name__], ROOT) if cls.__name__ in given else None for cls in command.requests]
    return [params.build(cls, own if base is not None else values, base) for cls, base in zip(command.requests, decoded)]


def execute(argv: list[str]) -> dict[str, Any]:
    """One subcommand: parsed, built into requests, validated before any work, run; its JSON summary."""
    args = build_parser().parse_args(script_args(argv))
    command, options = args.spec, args.options
    requests = requests_of(command, options, args)
    cluster = next((r for r in requests if isinstance(r, driver.ClusterOptions)), None)
    on_ray = cluster is not None and bool(cluster.address)  # the models, the shards and their folders are the nodes' concern
    ours_first = sorted((sharding.shardless(r) if on_ray else r for r in requests), key=lambda r: not isinstance(r, ADDED))
    for r in ours_first:  # every value first, then each request's rules, paths and models
        params.validate(r, options.naming, models=False, paths=False, rules=False)
    warnings = [
        w
        for r in ours_first
        for w in params.validate(
            r, options.naming, models=not (on_ray or isinstance(r, command.lazy)), paths=not isinstance(r, command.later)
        )
    ]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if on_ray:
        assert cluster is not None
        return on_cluster(command, [r for r in requests if not isinstance(r, driver.ClusterOptions)], cluster)
    if not next(r for r in requests if isinstance(r, Console)).verbose:  # before bpy: it logs from its import on
        runtime.divert_stdout(os.devnull)  # Blender's log (``Fra:1 Mem:… | Synchronizing object``) goes nowhere; our lines go on
    try:
        import bpy
    except ImportError:
        raise BatchError(NEEDS_BLENDER.removeprefix("error: ")) from None
    interrupts.remove_on_exit(Path(bpy.app.tempdir))  # Blender's session folder, which its own exit would remove
    scene = next((r for r in requests if isinstance(r, Scene)), None)
    if scene is not None and scene.blend:
        bpy.ops.wm.open_mainfile(filepath=str(Path(scene.blend).resolve()))
    load_addon()
    use_model_settings(requests)
    run = Run(requests, options.values(args), options.naming)
    summary = command.run(run)
    return {"command": command.name, **summary, **({"warnings": warnings} if warnings else {}), "timings_s": run.timings}


def use_model_settings(requests: list[Any]) -> None:
    """The add-on settings a job reads, from the command line (this session only): model access, engine, tracebacks."""
    from diffusion3d.operators.machinery import job, session  # type: ignore[import-not-found]

    job.current.tracebacks = next(r for r in requests if isinstance(r, Console)).debug
    engine = next((r for r in requests if isinstance(r, Engine)), None)
    session.use_model_options(next((r.access for r in requests if hasattr(r, "access")), None), engine.engine_python if engine else "")


def on_cluster(command: Command, requests: list[Any], cluster: driver.ClusterOptions) -> dict[str, Any]:
    """The Ray driver (no Blender here): the command's shards as tasks, each running this script with the shard's request."""
    sys.path.insert(0, str(ROOT))  # the tasks' code travels to the nodes as the package "engine"
    sys.modules["engine.interrupts"] = interrupts  # but one signal handling: the one main() installed
    from engine.distributed import sharding as on_nodes  # one copy of the engine in the driver: the tasks'
    from engine.distributed.driver import chain_summary, run_chain
    from engine.errors import EngineError as DriverError

    if cluster.blender:
        prefix = [os.path.abspath(cluster.blender), "-b", "--python", str(ROOT / "batch.py"), "--"]
    else:  # a venv's python is a link that must stay one: absolute, not resolved
        prefix = [os.path.abspath(cluster.task_python) if cluster.task_python else sys.executable, str(ROOT / "batch.py")]
    try:
        chain = getattr(on_nodes, command.shards)(requests, prefix, cluster.shards)
        summary, code = chain_summary(command.name, cluster.address, chain, run_chain(chain, cluster))
    except DriverError as exc:
        raise BatchError(str(exc)) from None
    return {**summary, "exit": code}


def main(argv: list[str]) -> int:
    what = f"batch.py {' '.join(script_args(argv)[:1])}".strip()
    interrupts.install(lambda: what)  # Ctrl-C and SIGTERM: the job stops within two seconds, its unfinished files removed
    try:
        summary = execute(argv)
    except Exception as exc:  # anything at all: one line, exit 1 (--debug: its traceback first); ^C and exits pass
        if interrupts.received():
            interrupts.exit_now(what, exc)
        if "--debug" in script_args(argv):
            traceback.print_exc()
        ours = isinstance(exc, (BatchError, errors.EngineError, RuntimeError))  # RuntimeError: an operator's report, as bpy.ops raises it
        print(f"error: {errors.last_line(exc) if ours else errors.readable(exc) + ' (a bug: --debug shows where)'}", file=sys.stderr)
        return 1
    interrupts.claim_exit()  # done: a signal from here on changes nothing
    print(json.dumps({key: value for key, value in summary.items() if key != "exit"}), flush=True)
    return int(summary.get("exit", 0))


if __name__ == "__main__":
    interrupts.leave(main(sys.argv))
