"""Headless jobs: ``blender -b [file.blend] --python batch.py -- SUBCOMMAND …``
or ``python batch.py SUBCOMMAND …`` with a Python that has the ``bpy`` module.

Each subcommand runs the same operators as the UI, prints progress, then one
JSON summary line last on stdout. On error it prints a one-line reason to
stderr and exits non-zero. ``python batch.py --help`` lists the subcommands.

A subcommand is two functions side by side: ``add_NAME(sub)`` adds its parser
(its options, and the function to run) and ``NAME(args)`` runs it. Option
groups that several subcommands share are ``add_…_options`` functions, and
every list of choices comes from the engine's ``choices`` module.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias

ROOT = Path(__file__).resolve().parent
ADDON = "diffusion3d"
NEEDS_BLENDER = "error: this needs Blender: run it with blender -b --python batch.py -- …, or a Python with the bpy module"

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Options: TypeAlias = "argparse._ActionsContainer"  # a parser or one of its argument groups


class BatchError(Exception):
    """A reason to stop, printed as one line."""


def script_args(argv: list[str]) -> list[str]:
    """Arguments meant for us: after ``--`` under Blender, else after the script name."""
    return argv[argv.index("--") + 1 :] if "--" in argv else argv[1:]


def addon_package() -> ModuleType:
    """This folder as the package ``diffusion3d``, whatever the folder is called.

    Its ``__init__.py`` imports nothing of Blender, so the parser can read the
    engine's choice lists before (and without) ``bpy``; :func:`load_addon` then
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
    from engine import choices
else:  # one copy of the engine: the add-on's, as Blender will enable it
    addon_package()
    try:
        from diffusion3d.engine import choices
    except ModuleNotFoundError as exc:  # the engine's numpy: Blender has it, a plain Python may not
        if exc.name != "numpy":
            raise
        print(NEEDS_BLENDER, file=sys.stderr)
        raise SystemExit(2) from None


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


def run_operator(op: Callable[..., set[str]], **kwargs: Any) -> None:
    """Call an operator; its error report becomes a BatchError with the same words."""
    try:
        result = op(**kwargs)
    except RuntimeError as exc:  # bpy.ops raises the operator's ERROR report
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "failed"
        raise BatchError(message.removeprefix("Error: ")) from None
    if "FINISHED" not in result:
        raise BatchError(f"{op.idname_py()} did not finish ({', '.join(result)})")


def save_blend(path: Path) -> None:
    import bpy

    path.parent.mkdir(parents=True, exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(path.resolve()), check_existing=False)


def parse_point(text: str) -> tuple[float, float, float]:
    try:
        x, y, z = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y,z, got {text!r}") from None
    return x, y, z


# Option groups several subcommands share -------------------------------------------------


def add_choice(options: Options, flag: str, among: choices.Choices[Any], help: str | None = None, default: bool = True) -> argparse.Action:
    """An option taking a command-line name from one of the engine's lists; ``among.from_cli`` gives its id.

    Its default is the list's own unless ``default`` is false (then None: the add-on's setting stays).
    """
    return options.add_argument(flag, choices=among.cli_names, default=among[among.default].cli if default else None, help=help)


def add_output_options(
    p: argparse.ArgumentParser, out: str | None = "output folder", default: str | None = None
) -> argparse._ArgumentGroup:
    """``--out`` (described by ``out``, required unless it has a default; left out for None) and ``--overwrite``.

    Returns the group, for a subcommand's other outputs.
    """
    group = p.add_argument_group("output options")
    if out is not None:
        described = out if default is None else f"{out} (default {default})"
        group.add_argument("--out", required=default is None, default=default, help=described)
    group.add_argument("--overwrite", action="store_true")
    return group


def add_model_options(p: argparse.ArgumentParser, pretrained: bool = True) -> list[argparse.Action]:
    """Where models come from and run, read by :func:`use_model_settings`; returns their actions.

    ``pretrained=False``: a job that trains its own model (kcf) takes only the device and the engine's Python.
    """
    group = p.add_argument_group("model options")
    actions = []
    if pretrained:
        actions.append(group.add_argument("--models-dir", help="folder holding diffusers model folders"))
        actions.append(group.add_argument("--cache-dir", help="Hugging Face hub cache"))
    actions.append(add_choice(group, "--device", choices.DEVICES, default=False))
    if pretrained:
        actions.append(add_choice(group, "--precision", choices.PRECISIONS, default=False))
        actions.append(group.add_argument("--allow-downloads", action="store_true", help="let the models download (needs network)"))
    else:  # use_model_settings reads the same names for every model job
        p.set_defaults(models_dir=None, cache_dir=None, precision=None, allow_downloads=False)
    python = group.add_argument(
        "--engine-python",
        default=os.environ.get("DIFFUSION3D_ENGINE_PYTHON") or None,
        help="run model jobs in a worker with this Python (one with torch: requirements-engine.txt); env DIFFUSION3D_ENGINE_PYTHON",
    )
    return [*actions, python]


def use_model_settings(args: argparse.Namespace) -> None:
    """The add-on preferences a model job reads, from the command line (this session only)."""
    from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

    prefs = session.preferences()
    for folder, name in ((args.models_dir, "models_dir"), (args.cache_dir, "hf_cache_dir")):
        if folder:
            setattr(prefs, name, str(Path(folder).resolve()))
    if args.device:
        prefs.device = choices.DEVICES.from_cli(args.device)
    if args.precision:
        prefs.precision = choices.PRECISIONS.from_cli(args.precision)
    if args.engine_python:
        python = Path(args.engine_python).expanduser()
        if not python.is_file():
            raise BatchError(f"--engine-python: no such interpreter {python}")
        prefs.engine_mode, prefs.python_path = "SUBPROCESS", str(python.absolute())
    if args.allow_downloads:
        prefs.allow_downloads = True


def add_ldm3d_options(p: argparse.ArgumentParser, model_default: str, one_prompt: bool = True) -> None:
    """The LDM3D generation options (read by :func:`generate_rgbd`), then the model options (``one_prompt``: --prompt, --count, --strength)."""
    group = p.add_argument_group("LDM3D options")
    group.add_argument(
        "--model",
        default=model_default,
        help=f"LDM3D folder or Hugging Face repo id (default: {model_default or 'none: the demo captures a scene'}; env DIFFUSION3D_LDM3D_PANO)",
    )
    if one_prompt:
        group.add_argument("--prompt", default="panoramic view of a cosy living room with a fireplace, wooden floor and large windows")
        group.add_argument("--count", type=int, default=1)
        group.add_argument("--strength", type=float, default=0.75, help="img2img: 0 keeps the input, 1 ignores it")
    group.add_argument("--negative", default="", help="negative prompt")
    group.add_argument("--steps", type=int, default=50)
    group.add_argument("--guidance", type=float, default=7.0)
    group.add_argument("--seed", type=int, default=0)
    add_choice(group, "--scheduler", choices.SCHEDULERS)
    group.add_argument("--no-seamless", action="store_true", help="let the panorama's left and right edges differ")
    group.add_argument("--vae-tiling", action="store_true", help="decode in tiles (less memory)")
    group.add_argument("--upscale", type=int, choices=[1, 2, 4], default=1, help="then LDM3D-sr: 2 or 4 × (the base stays in base/)")
    group.add_argument("--upscaler", default="Intel/ldm3d-sr", help="LDM3D-sr folder or repo id")
    add_model_options(p)


def generate_rgbd(args: argparse.Namespace, out: Path, build_sphere: bool) -> dict[str, Any]:
    import bpy

    use_model_settings(args)
    init: dict[str, Any] = {}
    if args.init_rgb or args.init_depth:
        if not args.init_rgb:
            raise BatchError("--init-depth needs the --init-rgb it belongs to")
        depth = str(Path(args.init_depth).resolve()) if args.init_depth else ""
        init = {"init": "FILES", "init_rgb_path": str(Path(args.init_rgb).resolve()), "init_depth_path": depth}
        if args.depth_estimator:
            init["depth_estimator"] = args.depth_estimator
    start = time.perf_counter()
    options: dict[str, Any] = dict(
        prompt=args.prompt,
        negative_prompt=args.negative,
        model=args.model,
        output_dir=str(out),
        projection="FLAT" if args.flat else "EQUIRECTANGULAR",
        width=args.width,
        height=args.height,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        count=args.count,
        scheduler=choices.SCHEDULERS.from_cli(args.scheduler),
        strength=args.strength,
        vae_tiling=args.vae_tiling,
        upscale=args.upscale,
        upscaler=args.upscaler,
        build_sphere=build_sphere,
        overwrite=args.overwrite,
        **init,
    )
    if args.no_seamless:
        options["seamless"] = False
    run_operator(bpy.ops.diffusion3d.generate_panorama, **options)
    from diffusion3d.engine.samples import sample_dirs  # type: ignore[import-not-found]
    from diffusion3d.engine.world.rgbd import OUTPUT_NAMES  # type: ignore[import-not-found]

    return {
        "paths": [{name: str(f / name) for name in OUTPUT_NAMES} for f in sample_dirs(out, args.count)],
        "timings_s": {"generate": round(time.perf_counter() - start, 3)},
    }


# Scale out on Ray: any subcommand that takes --shard I/N can run its shards as Ray tasks ------------

CLUSTER_OPTIONS = ("--ray", "--shards", "--retries", "--cpus-per-task", "--gpus-per-task", "--task-python", "--blender")


def add_cluster_options(p: argparse.ArgumentParser) -> None:
    """Run the job as --shards Ray tasks, each the single-machine job in a fresh process, merged at the end (README: Scale out)."""
    group = p.add_argument_group("scale out on Ray (a plain Python runs the driver; every node must reach --out's folder)")
    group.add_argument("--ray", metavar="ADDRESS", help="auto (a running cluster), local (start one here) or host:port")
    group.add_argument("--shards", type=int, help="with --ray: how many shards (one Ray task each)")
    group.add_argument("--retries", type=int, default=3, help="attempts after a task's process dies (default 3)")
    group.add_argument("--cpus-per-task", type=float, default=1.0)
    group.add_argument("--gpus-per-task", type=float, help="default: 1 for model jobs when the cluster has GPUs, else 0")
    group.add_argument("--task-python", metavar="PATH", help="the Python with the bpy module each task runs (default: this one)")
    group.add_argument("--blender", metavar="PATH", help="or the Blender each task runs (blender -b --python batch.py -- …)")


def shard_argv(argv: list[str]) -> list[str]:
    """The job's own arguments: the command line without the cluster options, --out, --overwrite and --shard."""
    kept, skip = [], False
    for token in argv:
        name = token.split("=", 1)[0]
        if skip:
            skip = False
        elif name in (*CLUSTER_OPTIONS, "--out", "--shard"):
            skip = "=" not in token
        elif name != "--overwrite":
            kept.append(token)
    return kept


def run_on_ray(args: argparse.Namespace, argv: list[str]) -> int:
    """The driver: no Blender here, only Ray and the engine."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from engine.distributed.driver import INCOMPLETE, ClusterOptions, run_chain
    from engine.errors import EngineError

    if not args.shards:
        print("error: --ray needs --shards N (how many Ray tasks to split the job into)", file=sys.stderr)
        return 1
    if args.blender:
        prefix = [os.path.abspath(args.blender), "-b", "--python", str(Path(__file__).resolve()), "--"]
    else:  # a venv's python is a link that must stay one: absolute, not resolved
        prefix = [os.path.abspath(args.task_python) if args.task_python else sys.executable, str(Path(__file__).resolve())]
    options = ClusterOptions(args.ray, args.retries, args.cpus_per_task, args.gpus_per_task)
    try:
        jobs = args.sharded(args, prefix, shard_argv(argv))
        runs = run_chain(jobs, options)
    except (EngineError, BatchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    failed = [{"job": run.job, **failure} for run in runs for failure in run.failed]
    for run in runs:
        for failure in run.failed:
            what = f"{run.job} shard {failure['index']}/{run.shards}"
            print(f"error: {what} failed after {failure['attempts']} attempt(s): {failure['error']}", file=sys.stderr)
    first, complete = runs[0], len(runs) == len(jobs) and runs[-1].merged
    summary = {
        "command": args.command,
        "ray": args.ray,
        "paths": {"dataset": first.output if complete else None, "shards": first.folder},
        "shards": first.shards,
        "done": first.done,
        "skipped": first.skipped,
        "failed": failed,
        "complete": complete,
        "images": first.images,
        "notes": [note for run in runs for note in run.notes],
        **{key: value for run in runs for key, value in run.merge.items()},
        "timings_s": {"total": round(sum(run.seconds for run in runs), 3)},
    }
    if len(jobs) > 1:  # a chain: each job's own figures
        summary["phases"] = [
            {"job": r.job, "shards": r.shards, "done": r.done, "skipped": r.skipped, "images": r.images, "seconds": round(r.seconds, 3)}
            for r in runs
        ]
    print(json.dumps(summary), flush=True)
    return 0 if complete else INCOMPLETE


def sharded_job(name: str, prefix: list[str], argv: list[str], output: str | Path, count: int, **how: Any) -> Any:
    """A job on Ray whose shard I of N runs ``prefix argv --shard I/N --out {its folder}``; ``how``: ShardedJob's other fields."""
    from engine.distributed.driver import ShardedJob
    from engine.distributed.tasks import OUT

    command = lambda i, n: [*prefix, *argv, "--shard", f"{i}/{n}", "--out", OUT]  # noqa: E731
    return ShardedJob(name, argv, Path(output).resolve(), count, command, **how)


def edges_sharded(args: argparse.Namespace, prefix: list[str], argv: list[str]) -> list[Any]:
    """edges on Ray: its shards' views merged into one data set, images counted as views rendered."""
    return [sharded_job("edges", prefix, argv, args.out, args.shards, **view_shards(args), progress_label="Rendering views")]


def view_shards(args: argparse.Namespace) -> dict[str, Any]:
    """How the shards of a job that renders views (edges, dst) are seeded, merged and counted."""

    def merge(shards: list[Path], output: Path) -> dict[str, Any]:
        from engine.dst.merge import merge_datasets

        merged = merge_datasets(shards, output)
        return {"views": merged.views, "annotations": merged.annotations}

    return dict(
        merge=merge,
        seeds=lambda i, n: {"seed": args.seed, "views": f"{i}/{n}"},
        images=lambda summary: int(summary.get("views", 0)),
        work=lambda summary: float(summary.get("timings_s", {}).get("edges", 0.0)),
    )


def generate_sharded(args: argparse.Namespace, prefix: list[str], argv: list[str]) -> list[Any]:
    """generate-from-edges on Ray: each shard generates into its own folder; the join copies them into the data set."""
    if args.into:
        raise BatchError("--out is one shard's folder: on Ray the images go into the data set once every shard is done")
    dataset = Path(args.dataset)

    def check() -> None:  # the shards write elsewhere: the join would refuse the data set's images only after all the work
        from engine.errors import BadInput

        if not args.overwrite and any((dataset / "generated").glob("*.png")):
            raise BadInput(f"{dataset / 'generated'} already holds generated images: --overwrite replaces them")

    def join(shards: list[Path], dataset: Path) -> dict[str, Any]:
        from engine.dst.generate import join_generated

        return {"generated_images": len(join_generated(shards, dataset, args.overwrite))}

    job = sharded_job(
        "generate-from-edges",
        prefix,
        argv,
        dataset,
        args.shards,
        merge=join,
        check=check,
        seeds=lambda i, n: {"seed": args.seed, "views": f"{i}/{n}"},
        images=lambda summary: int(summary.get("generated_images", 0)),
        work=lambda summary: float(summary.get("timings_s", {}).get("generate", 0.0)),
        progress_label=None,  # its progress counts denoising steps, not images
        needs_gpu=True,
        updates=True,
    )
    return [job]


def kcf_sharded(args: argparse.Namespace, prefix: list[str], argv: list[str]) -> list[Any]:
    """kcf on Ray: each shard trains its folds and writes their scores into its folder; the join filters the data set."""
    if args.scores_out:
        raise BatchError("--out is one shard's folder: on Ray the scores are joined into the data set once every shard is done")
    return [filter_job(args, prefix, argv, args.dataset)]


def filter_job(args: argparse.Namespace, prefix: list[str], argv: list[str], dataset: str | Path) -> Any:
    def join(shards: list[Path], dataset: Path) -> dict[str, Any]:
        from engine.dst.filter import join_scores

        result = join_scores(dataset, sorted(path for shard in shards for path in shard.glob("scores-*.json")), args.fraction)
        return {"scored": result.scored, "rejected": [Path(p).name for p in result.rejected]}

    return sharded_job(
        "kcf",
        prefix,
        argv,
        dataset,
        min(args.shards, args.folds),  # a shard trains folds I, I + N, …: more shards than folds would idle
        merge=join,
        seeds=lambda i, n: {"seed": args.seed, "folds": list(range(i - 1, args.folds, n))},
        images=lambda summary: int(summary.get("scored", 0)),
        work=lambda summary: float(summary.get("timings_s", {}).get("kcf", 0.0)),
        progress_label=None,  # its progress counts epochs
        needs_gpu=True,
        updates=True,
    )


def dst_sharded(args: argparse.Namespace, prefix: list[str], argv: list[str]) -> list[Any]:
    """dst on Ray: shards render and generate into their own folders and are merged; then the filter's folds are sharded."""
    views = view_shards(args)
    rendered = sharded_job(
        "dst",
        prefix,
        argv,
        args.out,
        args.shards,
        merge=views["merge"],  # a new data set, with each shard's generated images
        seeds=views["seeds"],
        images=lambda summary: int(summary.get("generated_images", 0)),
        work=lambda summary: float(sum(summary.get("timings_s", {}).values())),
        progress_label=None,
        needs_gpu=True,
    )
    if args.no_filter:
        return [rendered]
    scratch = argparse.ArgumentParser()
    actions = [*add_kcf_options(scratch), scratch.add_argument("--seed"), *add_model_options(scratch, pretrained=False)]
    filter_argv = ["kcf", "--dataset", str(rendered.output), *command_line(actions, args)]
    return [rendered, filter_job(args, prefix, filter_argv, rendered.output)]


def command_line(actions: list[argparse.Action], args: argparse.Namespace) -> list[str]:
    """The options ``actions`` stand for, written as a command line with the values in ``args``."""
    line: list[str] = []
    for action in actions:
        value = getattr(args, action.dest, None)
        if value is not None and value is not False:
            line += [action.option_strings[0]] if value is True else [action.option_strings[0], str(value)]
    return line


# The subcommands, in the order --help lists them -----------------------------------------


def add_capture(sub: Subparsers) -> None:
    p = sub.add_parser("capture", help="render an RGBD 360° panorama of a .blend (rgb.png, depth.exr, depth16.png, meta.json)")
    p.add_argument("--blend", help="scene to open (default: the file Blender was started with)")
    p.add_argument("--width", type=int, default=1024, help="panorama width; height is half (default 1024)")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--from", dest="origin", default="", help="camera, cursor, or x,y,z (default: camera, else cursor)")
    add_output_options(p)
    p.set_defaults(run=capture)


def capture(args: argparse.Namespace) -> dict[str, Any]:
    import bpy

    origin: dict[str, Any] = {"origin": "AUTO"}
    if args.origin == "camera":
        origin = {"origin": "CAMERA"}
    elif args.origin == "cursor":
        origin = {"origin": "CURSOR"}
    elif args.origin:
        origin = {"origin": "LOCATION", "location": parse_point(args.origin)}
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.capture_panorama,
        output_dir=str(Path(args.out).resolve()),
        width=args.width,
        samples=args.samples,
        overwrite=args.overwrite,
        **origin,
    )
    folder = Path(bpy.context.scene.diffusion3d.last_capture)
    return {
        "paths": {name: str(folder / name) for name in ("rgb.png", "depth.exr", "depth16.png", "meta.json")},
        "timings_s": {"capture": round(time.perf_counter() - start, 3)},
    }


def add_sphere(sub: Subparsers) -> None:
    p = sub.add_parser("sphere", help="build a displaced world sphere from an RGB and a depth panorama")
    p.add_argument("--blend", help="scene to open first")
    p.add_argument("--rgb", required=True)
    p.add_argument("--depth", required=True, help="float .exr/.npy/.hdr/.tif distances, or 8/16-bit disparity (near = bright)")
    add_choice(p, "--mode", choices.DEPTH_MODES, help="auto: float files are metric, 8/16-bit images relative")
    p.add_argument(
        "--place",
        choices=["origin", "cursor"],
        default="origin",
        help="centre of a sphere that is not from a capture (a capture's goes where it was taken)",
    )
    add_choice(p, "--mapping", choices.DEPTH_MAPPINGS, help="relative depth: paper offset or inverse depth")
    p.add_argument("--radius", type=float, default=5.0)
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--near", type=float, default=1.0)
    p.add_argument("--far", type=float, default=10.0)
    p.add_argument("--step", type=int, default=2, help="grid: every Nth pixel (1 full, 2 half …)")
    p.add_argument("--cut", type=float, default=0.0, help="drop faces across depth jumps larger than this ratio (0 = off)")
    add_output_options(p, out=None).add_argument("--save", help="write the scene with the sphere to this .blend")
    p.set_defaults(run=sphere)


def sphere(args: argparse.Namespace) -> dict[str, Any]:
    import bpy

    if args.save and Path(args.save).exists() and not args.overwrite:
        raise BatchError(f"{args.save} already exists (use --overwrite)")
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.build_world_sphere,
        rgb_path=str(Path(args.rgb).resolve()),
        depth_path=str(Path(args.depth).resolve()),
        depth_mode=choices.DEPTH_MODES.from_cli(args.mode),
        relative_mapping=choices.DEPTH_MAPPINGS.from_cli(args.mapping),
        place=args.place.upper(),
        radius=args.radius,
        strength=args.strength,
        near=args.near,
        far=args.far,
        grid_step=args.step,
        discontinuity=args.cut,
    )
    timings = {"sphere": round(time.perf_counter() - start, 3)}
    obj = bpy.context.view_layer.objects.active
    assert obj is not None  # the operator made the sphere active
    summary: dict[str, Any] = {
        "object": obj.name,
        "vertices": len(obj.data.vertices),
        "faces": len(obj.data.polygons),
        "depth_mode": obj["diffusion3d_world"]["depth_mode"],
        "location": list(obj.location.to_tuple()),
    }
    if args.save:
        save_blend(Path(args.save))
        summary["paths"] = {"blend": str(Path(args.save).resolve())}
    summary["timings_s"] = timings
    return summary


def add_demo(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="furnished room → RGBD capture → world sphere → world.blend and previews (offline)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--step", type=int, default=1, help="sphere grid step (default 1: full resolution)")
    p.add_argument("--video-width", type=int, default=1024, help="eye width of the 2 s top-bottom stereo 360° video (default 1024)")
    add_output_options(p, default="out/demo")
    add_ldm3d_options(p, model_default=os.environ.get("DIFFUSION3D_LDM3D_PANO", ""))
    # generate_rgbd's panorama options the demo does not offer
    p.set_defaults(run=demo, height=0, init_rgb=None, init_depth=None, depth_estimator=None, flat=False)


def demo(args: argparse.Namespace) -> dict[str, Any]:
    """Furnished room → RGBD capture → world sphere → world.blend and two preview renders."""
    import bpy

    from diffusion3d.operators.demo import previews  # type: ignore[import-not-found]
    from diffusion3d.operators.demo import scene as demo_scene

    out = Path(args.out).resolve()
    source = f"ldm3d:{args.model}" if args.model else "capture"
    first = out / ("generated" if args.model else "capture")
    targets = [first, out / "world.blend", out / "preview_center.png", out / "preview_offcenter.png", out / "stereo360.mp4"]
    existing = [p.name for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise BatchError(f"{out} already holds {', '.join(existing)} (use --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def timed(name: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        value = work()
        timings[name] = round(time.perf_counter() - start, 3)
        return value

    bpy.ops.wm.read_factory_settings(use_empty=True)
    load_addon()
    scene = bpy.context.scene
    if args.model:  # text → RGBD with a real LDM3D-pano model, then the sphere from its relative depth
        generated = timed("generate", lambda: generate_rgbd(args, out / "generated", build_sphere=False))["paths"][0]
        sphere_input = dict(rgb_path=generated["rgb.png"], depth_path=generated["depth16.png"])
    else:
        room = timed("scene", lambda: demo_scene.build_demo_room(scene))
        timed(
            "capture",
            lambda: run_operator(
                bpy.ops.diffusion3d.capture_panorama,
                output_dir=str(out / "capture"),
                width=args.width,
                samples=args.samples,
                origin="LOCATION",
                location=demo_scene.EYE,
                overwrite=args.overwrite,
            ),
        )
        bpy.context.view_layer.layer_collection.children[room.name].exclude = True  # the sphere replaces the room
        sphere_input = dict(rgb_path=str(out / "capture" / "rgb.png"), depth_path=str(out / "capture" / "depth.exr"))
    timed("sphere", lambda: run_operator(bpy.ops.diffusion3d.build_world_sphere, grid_step=args.step, **sphere_input))
    sphere_obj = bpy.context.view_layer.objects.active
    # The sphere sits where the panorama was taken (EYE for the capture); the views are relative to its centre.
    centre = sphere_obj.matrix_world.translation.to_tuple()
    off = (0.6, -0.4, -0.3)
    offcentre = tuple(c + o for c, o in zip(centre, off))
    preview_width = min(args.width, 1024)
    timed("preview_center", lambda: previews.render_equirect(scene, centre, out / "preview_center.png", preview_width))
    timed("preview_offcenter", lambda: previews.render_equirect(scene, offcentre, out / "preview_offcenter.png", preview_width))
    video_args = argparse.Namespace(
        out=str(out / "stereo360.mp4"),
        flat=False,
        ipd=None,
        scene_scale=1.0,
        move="dolly",
        seconds=2.0,
        amplitude=0.5,
        format="mp4",
        layout="top-bottom",
        quality="fast",
        overwrite=args.overwrite,
        keep_frames=False,
        resolution=str(args.video_width),
        projection=choices.VIDEO_PROJECTIONS[choices.VIDEO_PROJECTIONS.default].cli,
        still=False,
    )
    video = timed("stereo_video", lambda: stereo_video(video_args))
    timed("save", lambda: save_blend(out / "world.blend"))
    return {
        "source": source,
        "paths": {
            first.name: str(first),
            "blend": str(out / "world.blend"),
            "preview_center": str(out / "preview_center.png"),
            "preview_offcenter": str(out / "preview_offcenter.png"),
            "stereo_video": video["paths"]["video"],
        },
        "sphere": {"object": sphere_obj.name, "vertices": len(sphere_obj.data.vertices), "location": list(centre)},
        "offcenter_view": list(off),
        "timings_s": timings,
    }


def add_panorama(sub: Subparsers) -> None:
    p = sub.add_parser("panorama", help="text (or RGB + depth) → RGBD panorama with LDM3D (rgb.png, depth16.png, depth.npy, meta.json)")
    p.add_argument("--width", type=int, default=0, help="multiple of 8 (default: 1024 for panoramas, the model's size for --flat)")
    p.add_argument("--height", type=int, default=0)
    p.add_argument("--init-rgb", help="img2img: the RGB panorama to start from")
    p.add_argument(
        "--init-depth", help="img2img: its depth (float EXR/.npy distances, or 8/16-bit disparity, near = bright); default: estimated"
    )
    p.add_argument("--depth-estimator", help="DPT folder or repo id for estimating the init depth (default Intel/dpt-large)")
    p.add_argument("--flat", action="store_true", help="an ordinary image, not a 360° panorama")
    add_output_options(p).add_argument("--save", help="also build the world sphere and write the scene to this .blend")
    add_ldm3d_options(p, model_default=os.environ.get("DIFFUSION3D_LDM3D_PANO", "Intel/ldm3d-pano"))
    p.set_defaults(run=panorama)


def panorama(args: argparse.Namespace) -> dict[str, Any]:
    import bpy

    if args.save and Path(args.save).exists() and not args.overwrite:
        raise BatchError(f"{args.save} already exists (use --overwrite)")
    summary = generate_rgbd(args, Path(args.out).resolve(), build_sphere=bool(args.save) and not args.flat)
    if args.save:
        obj = bpy.context.view_layer.objects.active
        summary["sphere"] = {"object": obj.name, "vertices": len(obj.data.vertices)} if obj is not None else None
        save_blend(Path(args.save))
        summary["blend"] = str(Path(args.save).resolve())
    return summary


def add_panoramas(sub: Subparsers) -> None:
    p = sub.add_parser(
        "panoramas", help="one LDM3D panorama per line of a prompt file (prompt-NNNN/: rgb.png, depth16.png, depth.npy, meta.json)"
    )
    p.add_argument("--prompts", required=True, help="a text file, one prompt per line (blank lines and # comments skipped)")
    p.add_argument("--lines", help="only these prompts, e.g. 7 or 1,5-9: prompt n has seed --seed + n − 1 in every run")
    p.add_argument("--width", type=int, default=0, help="multiple of 8 (default 1024 for panoramas)")
    p.add_argument("--height", type=int, default=0)
    p.add_argument("--flat", action="store_true", help="ordinary images, not 360° panoramas")
    p.add_argument("--save-blend", action="store_true", help="also build each world sphere and save it as prompt-NNNN/world.blend")
    p.add_argument("--shard", help="I/N: this machine's share of the prompts (I, I + N, …)")
    add_output_options(p, "the folder for the prompt-NNNN folders (prompts already made there are skipped)")
    add_ldm3d_options(p, model_default=os.environ.get("DIFFUSION3D_LDM3D_PANO", "Intel/ldm3d-pano"), one_prompt=False)
    add_cluster_options(p)
    p.set_defaults(run=panoramas, sharded=panoramas_sharded, init_rgb=None, init_depth=None, depth_estimator=None, count=1, strength=1.0)


def panoramas(args: argparse.Namespace) -> dict[str, Any]:
    """Each chosen prompt → its own folder, seeded by its line; prompts already made are skipped (--overwrite makes them again)."""
    import bpy

    from diffusion3d.engine.world.prompt_lists import read_prompts, select  # type: ignore[import-not-found]

    try:
        prompts = select(read_prompts(Path(args.prompts), args.seed), args.shard or "", args.lines or "")
    except Exception as exc:  # the engine's one-line refusal
        raise BatchError(str(exc)) from None
    out = Path(args.out).resolve()
    made, skipped, start = [], [], time.perf_counter()
    for done, prompt in enumerate(prompts, start=1):
        folder = out / prompt.folder
        if (folder / "meta.json").is_file() and not args.overwrite:
            skipped.append(prompt.number)
        else:
            one = argparse.Namespace(**{**vars(args), "prompt": prompt.text, "seed": prompt.seed})
            generate_rgbd(one, folder, build_sphere=args.save_blend and not args.flat)
            if args.save_blend and not args.flat:
                save_blend(folder / "world.blend")
                bpy.ops.wm.read_homefile(use_empty=True)  # the next prompt's .blend holds only its own world
            made.append(prompt.number)
        print(f"[diffusion3d] Panoramas: {done}/{len(prompts)} {prompt.folder}", flush=True)
    return {
        "paths": {"folder": str(out)},
        "prompts": [p.number for p in prompts],
        "made": made,
        "skipped": skipped,
        "timings_s": {"total": round(time.perf_counter() - start, 3)},
    }


def panoramas_sharded(args: argparse.Namespace, prefix: list[str], argv: list[str]) -> list[Any]:
    """panoramas on Ray: each shard's prompt folders moved into the output together; images counted as prompts made."""
    from engine.world.prompt_lists import read_prompts, select

    prompts = read_prompts(Path(args.prompts), args.seed)

    def merge(shards: list[Path], output: Path) -> dict[str, Any]:
        return join_folders(shards, output)

    def seeds(i: int, n: int) -> dict[str, Any]:
        return {p.folder: p.seed for p in select(prompts, f"{i}/{n}", args.lines or "")}

    count = lambda summary: len(summary.get("prompts", []))  # noqa: E731
    return [
        sharded_job(
            "panoramas",
            prefix,
            argv,
            args.out,
            args.shards,
            merge=merge,
            seeds=seeds,
            images=count,
            progress_label="Panoramas",
            needs_gpu=True,
        )
    ]


def link_or_copy(source: str | Path, target: str | Path) -> None:
    """A hard link (instant, no second copy on disk; the shard keeps its own name), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def join_folders(shards: list[Path], output: Path) -> dict[str, Any]:
    """Every shard's sub-folders into ``output`` at once: gathered beside it, then renamed into place (nothing half-joined)."""
    staging = output.with_name(f".{output.name}.joining")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        names = []
        for shard in shards:
            for child in sorted(shard.iterdir()):
                if (staging / child.name).exists():
                    raise BatchError(f"Two shards both made {child.name}: they disagree, nothing was joined")
                if child.is_dir():
                    shutil.copytree(child, staging / child.name, copy_function=link_or_copy)
                else:
                    link_or_copy(child, staging / child.name)
                names.append(child.name)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"folders": sorted(names)}


def add_upscale(sub: Subparsers) -> None:
    from diffusion3d.engine.world.upscale import OVERLAP_PX, PROMPT, WINDOW_PX  # type: ignore[import-not-found]

    p = sub.add_parser(
        "upscale", help="an RGB image and its depth → 2× or 4× with LDM3D-sr, seamless for panoramas (rgb.png, depth16.png, depth.npy)"
    )
    p.add_argument("--rgb", required=True, help="the RGB image (e.g. a panorama's rgb.png)")
    p.add_argument("--depth", required=True, help="its depth: 16-bit disparity (depth16.png) or distances (EXR, .npy); 8-bit warns")
    p.add_argument("--scale", type=float, default=2.0, help="the target is the input × this (default 2)")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), help="or the target size (multiples of 8)")
    p.add_argument("--flat", action="store_true", help="an ordinary image, not a 360° panorama (its edges do not wrap)")
    p.add_argument("--model", default="Intel/ldm3d-sr", help="LDM3D-sr folder or repo id")
    p.add_argument("--prompt", default=PROMPT)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=9.0)
    p.add_argument("--noise-level", type=int, default=20, help="how much the upscaler may change (0–350)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--window", type=int, default=WINDOW_PX, help="pixels on a denoising window's side")
    p.add_argument("--overlap", type=int, default=OVERLAP_PX, help="pixels neighbouring windows share")
    p.add_argument("--window-batch", type=int, default=1, help="windows per UNet call (faster on a large GPU)")
    p.add_argument("--vae-tiling", action="store_true", help="always decode in tiles (default: above 2048 px)")
    add_output_options(p, "the folder for rgb.png, depth16.png, depth.npy and meta.json")
    add_model_options(p)
    p.set_defaults(run=upscale)


def upscale(args: argparse.Namespace) -> dict[str, Any]:
    """The upscale_rgbd engine job."""
    from diffusion3d.engine.world.upscale import UpscaleRequest  # type: ignore[import-not-found]
    from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

    use_model_settings(args)
    width, height = args.size or (0, 0)
    request = UpscaleRequest(
        rgb=str(Path(args.rgb).resolve()),
        depth=str(Path(args.depth).resolve()),
        out_dir=str(Path(args.out).resolve()),
        model=args.model,
        scale=args.scale,
        width=width,
        height=height,
        projection="FLAT" if args.flat else "EQUIRECTANGULAR",
        prompt=args.prompt,
        steps=args.steps,
        guidance=args.guidance,
        noise_level=args.noise_level,
        seed=args.seed,
        window=args.window,
        overlap=args.overlap,
        window_batch=args.window_batch,
        vae_tiling=True if args.vae_tiling else None,
        access=session.model_access(session.preferences()),
        overwrite=args.overwrite,
    )
    result = run_engine_job("upscale_rgbd", request)
    return {
        "paths": result.paths,
        "size": [result.width, result.height],
        "windows": result.windows,
        "warnings": result.warnings,
        "timings_s": {"upscale": round(result.seconds, 3)},
    }


def resolution_presets() -> list[str]:
    """``--resolution``'s names: the video resolutions with an eye width of their own (not Custom)."""
    return [r.cli for r in choices.VIDEO_RESOLUTIONS if r.eye_width]


def add_stereo_video(sub: Subparsers) -> None:
    p = sub.add_parser(
        "stereo-video", help="move a stereo rig inside the world sphere and render a 360° or VR180 stereo video with spatial metadata"
    )
    p.add_argument("--blend", help="scene with a world sphere (default: the file Blender was started with)")
    p.add_argument(
        "--move", choices=["dolly", "orbit", "sway", "figure8", "look", "keep"], default="dolly", help="keep: the rig's own keyframes"
    )
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--amplitude", type=float, default=0.5, help="fraction of the safe radius (at most 1)")
    p.add_argument("--ipd", type=float, help="interocular distance in metres (default 0.065, or the rig's)")
    p.add_argument("--scene-scale", type=float, default=1.0, help="scene units per metre: multiplies --ipd")
    p.add_argument("--flat", action="store_true", help="a new rig is a flat perspective stereo pair, not 360°")
    add_choice(p, "--projection", choices.VIDEO_PROJECTIONS, help="vr180: the front half sphere, square eyes, a _180_sbs/_180_tb name")
    add_choice(
        p, "--layout", choices.STEREO_LAYOUTS, help="default: the projection's (rig: top-bottom, vr180: side-by-side)", default=False
    )
    p.add_argument("--still", action="store_true", help="one stereo image of the first frame (PNG, or EXR with --format exr)")
    default = choices.VIDEO_RESOLUTIONS[choices.VIDEO_RESOLUTIONS.default].cli
    p.add_argument(
        "--resolution", default=default, help=f"{', '.join(resolution_presets())}, or an eye width in pixels (default {default})"
    )
    add_choice(p, "--format", choices.VIDEO_FORMATS)
    add_choice(p, "--quality", choices.VIDEO_QUALITIES, help="fast: emission-only world sphere")
    p.add_argument("--keep-frames", action="store_true")
    add_output_options(p, "the .mp4 file, or a folder for --format png/exr")
    p.set_defaults(run=stereo_video)


def resolution_options(text: str) -> dict[str, Any]:
    """A preset name or an eye width in pixels (the Custom resolution)."""
    if text in resolution_presets():
        return {"resolution": choices.VIDEO_RESOLUTIONS.from_cli(text)}
    if text.isdigit():
        custom = next(r.id for r in choices.VIDEO_RESOLUTIONS if not r.eye_width)
        return {"resolution": custom, "eye_width": int(text)}
    raise BatchError(f"--resolution takes {', '.join(resolution_presets())} or an eye width in pixels, got {text!r}")


def stereo_video(args: argparse.Namespace) -> dict[str, Any]:
    """The scene's stereo rig (added at the world sphere if there is none), moved, rendered to a stereo video."""
    import bpy

    from diffusion3d.engine.world.stereo_video import output_file  # type: ignore[import-not-found]
    from diffusion3d.operators.stereo_rig import RIG_KEY  # type: ignore[import-not-found]

    resolution = resolution_options(args.resolution)
    timings: dict[str, float] = {}
    scene = bpy.context.scene
    rigs = [o for o in scene.objects if o.get(RIG_KEY) is not None]
    start = time.perf_counter()
    if not rigs:
        run_operator(
            bpy.ops.diffusion3d.add_stereo_rig,
            mode="FLAT" if args.flat else "SPHERICAL",
            interocular=args.ipd if args.ipd is not None else 0.065,
            scene_scale=args.scene_scale,
        )
    elif args.ipd is not None:
        rig = rigs[0] if len(rigs) == 1 else None
        camera = next((c for c in rig.children if c.type == "CAMERA"), None) if rig is not None else None
        if camera is None:
            raise BatchError("--ipd needs one stereo rig with a camera in the scene")
        if args.ipd <= 0:
            raise BatchError(f"Interocular distance must be greater than 0, got {args.ipd}")
        camera.data.stereo.interocular_distance = args.ipd * args.scene_scale
    move = "CUSTOM" if args.move == "keep" else args.move.upper()
    options = {} if move == "CUSTOM" else {"seconds": args.seconds, "amplitude": args.amplitude}
    run_operator(bpy.ops.diffusion3d.animate_rig, move=move, **options)
    timings["rig"] = round(time.perf_counter() - start, 3)
    out = Path(args.out).resolve()
    projection = choices.VIDEO_PROJECTIONS.from_cli(args.projection)
    layout = choices.STEREO_LAYOUTS.from_cli(args.layout) if args.layout else choices.VIDEO_PROJECTIONS[projection].layout
    if args.still or args.format == "mp4":  # the file the operator writes: its suffix, and VR180's name tags
        suffix = ".mp4" if not args.still else ".exr" if args.format == "exr" else ".png"
        out = output_file(out, suffix, projection, choices.STEREO_LAYOUTS[layout].spatial_media)
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.render_stereo_video,
        filepath=str(out),
        file_format=choices.VIDEO_FORMATS.from_cli(args.format),
        projection=projection,
        stereo_layout=layout,
        still=args.still,
        quality=choices.VIDEO_QUALITIES.from_cli(args.quality),
        overwrite=args.overwrite,
        keep_frames=args.keep_frames,
        **resolution,
    )
    timings["render"] = round(time.perf_counter() - start, 3)
    frames = 1 if args.still else scene.frame_end - scene.frame_start + 1
    timings["per_frame"] = round(timings["render"] / frames, 3)
    paths = {"image" if args.still else "video": str(out)}
    layout_name = choices.STEREO_LAYOUTS[layout].cli
    return {"paths": paths, "frames": frames, "projection": args.projection, "layout": layout_name, "timings_s": timings}


def add_scene_options(p: argparse.ArgumentParser) -> None:
    """3D-DST's scene and viewpoints (edges, dst)."""
    p.add_argument("--blend", help="scene with the objects (default: the file Blender was started with)")
    p.add_argument("--objects", help="comma-separated object names (default: every visible mesh object)")
    p.add_argument("--collection", help="use the mesh objects of this collection instead")
    p.add_argument("--views", type=int, default=8, help="viewpoints per object (default 8)")
    p.add_argument("--azimuth", choices=["full", "half"], default="full")
    p.add_argument("--elevation", choices=["wide", "high"], default="wide", help="3D-DST's polar presets: N(90, 30) or N(60, 20)")
    p.add_argument("--inplane", type=float, default=0.0, help="in-plane rotation uniform on ± this many degrees")
    p.add_argument("--distance", type=float, default=2.0, help="camera distance in object sizes")
    p.add_argument("--jitter", action="store_true", help="3D-DST's distance jitter")
    p.add_argument("--viewpoints", help="explicit views instead: 'azimuth polar in-plane distance; …'")
    p.add_argument("--resolution", type=int, default=512)
    p.add_argument("--samples", type=int, default=32)
    add_choice(p, "--edges", choices.EDGE_METHODS)


def add_generation_options(p: argparse.ArgumentParser) -> None:
    """3D-DST's ControlNet generation (generate-from-edges, dst); its defaults are the engine request's."""
    from diffusion3d.engine.dst.generate import EdgeGenerationRequest  # type: ignore[import-not-found]
    from diffusion3d.engine.jobs import request_defaults  # type: ignore[import-not-found]

    default = request_defaults(EdgeGenerationRequest)
    p.add_argument("--base-model", default=default["base_model"], help="SD 1.5 (or SDXL) folder or repo id")
    p.add_argument("--controlnet", default=default["controlnet"], help="canny ControlNet for that base")
    p.add_argument("--vae", help="another VAE (SDXL's fp16 fix)")
    p.add_argument("--images-per-view", type=int, default=default["images_per_view"])
    p.add_argument("--steps", type=int, default=default["steps"])
    p.add_argument("--guidance", type=float, default=default["guidance"])
    p.add_argument("--control-strength", type=float, default=default["control_strength"])
    p.add_argument("--style", help="comma-separated words added to every prompt")
    p.add_argument("--prompt-model", help="local text-generation model folder for prompt expansion")


def add_kcf_options(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """The K-fold filter's settings (kcf, dst), defaulting to the engine request's; returns their actions (dst writes them
    into its filter shards' command line)."""
    from diffusion3d.engine.dst.filter import KCFRequest  # type: ignore[import-not-found]
    from diffusion3d.engine.jobs import request_defaults  # type: ignore[import-not-found]

    default = request_defaults(KCFRequest)
    return [
        p.add_argument(
            "--fraction", type=float, default=default["fraction"], help=f"share of generated images to drop (default {default['fraction']})"
        ),
        p.add_argument("--folds", type=int, default=default["folds"]),
        p.add_argument("--epochs", type=int, default=default["epochs"]),
        p.add_argument("--image-size", type=int, default=default["image_size"]),
        add_choice(p, "--backbone", choices.KCF_BACKBONES),
    ]


def add_edges(sub: Subparsers) -> None:
    p = sub.add_parser(
        "edges", help="3D-DST: render scene objects from sampled viewpoints → images, edge maps, masks, depth, COCO annotations"
    )
    add_scene_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", help="I/N: this machine's share of the views (1-based I); join the shards with merge")
    add_output_options(p, "dataset folder")
    add_cluster_options(p)
    p.set_defaults(run=edges, sharded=edges_sharded)


def edges(args: argparse.Namespace) -> dict[str, Any]:
    """Scene objects → rendered views → a 3D-DST data set (this shard's views)."""
    import bpy

    scene = bpy.context.scene
    options: dict[str, Any] = {"source": "SELECTED"}
    if args.collection:
        options = {"source": "COLLECTION", "collection": args.collection}
    else:
        names = [n.strip() for n in args.objects.split(",") if n.strip()] if args.objects else None
        chosen = [o for o in scene.objects if (o.name in names if names is not None else o.type == "MESH" and o.visible_get())]
        missing = sorted(set(names or ()) - {o.name for o in chosen})
        if missing:
            raise BatchError(f"No object named {', '.join(missing)} in scene {scene.name!r}")
        for obj in scene.objects:
            obj.select_set(obj in chosen)
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.render_edge_maps,
        dataset_dir=str(Path(args.out).resolve()),
        views_per_object=args.views,
        seed=args.seed,
        azimuth_range=args.azimuth.upper(),
        polar_preset=args.elevation.upper(),
        inplane_max=args.inplane,
        distance=args.distance,
        distance_jitter=args.jitter,
        viewpoints=args.viewpoints or "",
        resolution=args.resolution,
        samples=args.samples,
        edge_method=choices.EDGE_METHODS.from_cli(args.edges),
        shard=args.shard or "",
        overwrite=args.overwrite,
        **options,
    )
    seconds = time.perf_counter() - start
    annotations = json.loads((Path(args.out) / "annotations.json").read_text(encoding="utf-8"))
    views = len(annotations["images"])
    return {
        "paths": {"dataset": str(Path(args.out).resolve())},
        "views": views,
        "annotations": len(annotations["annotations"]),
        "shard": args.shard or "",
        "timings_s": {"edges": round(seconds, 3), "per_view": round(seconds / max(views, 1), 3)},
    }


def add_generate_from_edges(sub: Subparsers) -> None:
    p = sub.add_parser(
        "generate-from-edges", help="3D-DST: ControlNet images from a data set's edge maps, sharing their views' 3D annotations"
    )
    p.add_argument("--dataset", required=True, help="dataset folder made by edges")
    add_generation_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", help="I/N: this machine's share of the views")
    group = add_output_options(p, out=None)
    group.add_argument("--out", dest="into", help="write the images here instead of the data set's generated/ (a shard's share, for --ray)")
    add_model_options(p)
    add_cluster_options(p)
    p.set_defaults(run=generate_from_edges, sharded=generate_sharded)


def generate_from_edges(args: argparse.Namespace) -> dict[str, Any]:
    """A data set's edge maps → ControlNet images linked to their views' annotations."""
    import bpy

    use_model_settings(args)
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.generate_from_edges,
        dataset_dir=str(Path(args.dataset).resolve()),
        base_model=args.base_model,
        controlnet=args.controlnet,
        vae=args.vae or "",
        images_per_view=args.images_per_view,
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        control_strength=args.control_strength,
        style=args.style or "",
        prompt_model=args.prompt_model or "",
        shard=args.shard or "",
        out_dir=str(Path(args.into).resolve()) if args.into else "",
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    generated = sorted((Path(args.into or Path(args.dataset) / "generated")).glob("*.png"))
    return {
        "paths": {"dataset": str(Path(args.dataset).resolve())},
        "generated_images": len(generated),
        "timings_s": {"generate": round(seconds, 3)},
    }


def add_kcf(sub: Subparsers) -> None:
    p = sub.add_parser("kcf", help="3D-DST K-fold consistency filter: score generated images, move the worst to rejected/")
    p.add_argument("--dataset", required=True)
    add_kcf_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shard", help="I/N: train only this share of the folds; a run without --shard joins the scores")
    p.add_argument("--out", dest="scores_out", help="with --shard: write its scores here instead of the data set's kcf/ (for --ray)")
    add_model_options(p, pretrained=False)
    add_cluster_options(p)
    p.set_defaults(run=kcf, sharded=kcf_sharded)


def kcf(args: argparse.Namespace) -> dict[str, Any]:
    """The K-fold consistency filter on a data set's generated images."""
    import bpy

    use_model_settings(args)
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.filter_dataset,
        dataset_dir=str(Path(args.dataset).resolve()),
        fraction=args.fraction,
        folds=args.folds,
        seed=args.seed,
        backbone=choices.KCF_BACKBONES.from_cli(args.backbone),
        epochs=args.epochs,
        image_size=args.image_size,
        shard=args.shard or "",
        scores_dir=str(Path(args.scores_out).resolve()) if args.scores_out else "",
    )
    root = Path(args.dataset)
    seconds = {"kcf": round(time.perf_counter() - start, 3)}
    if args.shard:
        from diffusion3d.engine.dst.filter import scores_path  # type: ignore[import-not-found]

        scores = scores_path(root, args.shard, str(Path(args.scores_out).resolve()) if args.scores_out else "")
        scored = sum(s is not None for s in json.loads(scores.read_text(encoding="utf-8"))["scores"])
        return {"paths": {"dataset": str(root.resolve()), "scores": str(scores)}, "scored": scored, "timings_s": seconds}
    rejected = sorted(p.name for p in (root / "rejected").glob("*.png"))
    return {"paths": {"dataset": str(root.resolve())}, "rejected": rejected, "timings_s": seconds}


def add_dst(sub: Subparsers) -> None:
    p = sub.add_parser("dst", help="3D-DST end to end: scene objects → views, edge maps, annotations → ControlNet images → K-fold filter")
    add_scene_options(p)
    add_generation_options(p)
    add_kcf_options(p)
    p.add_argument("--seed", type=int, default=0, help="the viewpoints', the images' and the folds' seed")
    p.add_argument("--no-filter", action="store_true", help="stop after generating (no K-fold filter)")
    p.add_argument("--shard", help="I/N: render and generate this share of the views (no filter: it needs every image; see --ray)")
    add_output_options(p, "dataset folder")
    add_model_options(p)
    add_cluster_options(p)
    p.set_defaults(run=dst, sharded=dst_sharded, into=None, scores_out=None)


def dst(args: argparse.Namespace) -> dict[str, Any]:
    """edges, generate-from-edges and kcf, one after another in this process, on one data set."""
    rendered = edges(args)
    on_it = argparse.Namespace(**{**vars(args), "dataset": args.out})
    generated = generate_from_edges(on_it)
    filtered = kcf(on_it) if not (args.shard or args.no_filter) else {}
    return {
        "paths": rendered["paths"],
        "views": rendered["views"],
        "annotations": rendered["annotations"],
        "shard": rendered["shard"],
        "generated_images": generated["generated_images"],
        **({"rejected": filtered["rejected"]} if filtered else {}),
        "timings_s": {
            "edges": rendered["timings_s"]["edges"],
            "generate": generated["timings_s"]["generate"],
            **filtered.get("timings_s", {}),
        },
    }


def add_multiview(sub: Subparsers) -> None:
    p = sub.add_parser(
        "multiview", help="one object image (or a .blend object) → four views with their cameras (ImageDream; MVDream from text alone)"
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument("--image", help="the object image (best with a transparent background)")
    source.add_argument("--blend", help="a .blend whose --object is rendered from the front")
    p.add_argument("--object", help="with --blend: the object (or collection) to render")
    p.add_argument(
        "--model", default="", help="ImageDream / MVDream folder or repo id (default: ImageDream for an image, MVDream for text)"
    )
    p.add_argument("--prompt", default="")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--guidance", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=1, help="object sets; set i uses seed + i")
    p.add_argument("--elevation", type=float, default=0.0, help="degrees (the models were trained on 0–30)")
    p.add_argument("--size", type=int, default=256)
    add_choice(p, "--preprocess", choices.IMAGE_PREPARATIONS)
    add_choice(p, "--scheduler", choices.SCHEDULERS)
    p.add_argument("--reconstruct", action="store_true", help="also carve the quick mesh (hull.ply)")
    add_output_options(p).add_argument("--save", help="also write the scene with the views' cameras to this .blend")
    add_model_options(p)
    p.set_defaults(run=multiview)


def multiview(args: argparse.Namespace) -> dict[str, Any]:
    """The generate_views operator on an image file, a .blend's object, or text alone."""
    import bpy

    if args.blend and not args.object or args.object and not args.blend:
        raise BatchError("--blend and --object go together")
    if args.save and Path(args.save).exists() and not args.overwrite:
        raise BatchError(f"{args.save} already exists (use --overwrite)")
    use_model_settings(args)
    source: dict[str, Any] = {"source": "TEXT"}
    if args.image:
        source = {"source": "FILE", "image_path": str(Path(args.image).resolve())}
    elif args.blend:
        bpy.ops.wm.open_mainfile(filepath=str(Path(args.blend).resolve()))
        load_addon()
        source = {"source": "OBJECT", "object_name": args.object}
    out = Path(args.out).resolve()
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.generate_views,
        **source,
        model=args.model,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        count=args.count,
        elevation=args.elevation,
        size=args.size,
        preparation=choices.IMAGE_PREPARATIONS.from_cli(args.preprocess),
        scheduler=choices.SCHEDULERS.from_cli(args.scheduler),
        reconstruct=args.reconstruct,
        output_dir=str(out),
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    from diffusion3d.engine.samples import sample_dirs  # type: ignore[import-not-found]

    summary: dict[str, Any] = {
        "paths": [{p.name: str(p) for p in sorted(folder.iterdir())} for folder in sample_dirs(out, args.count)],
        "timings_s": {"generate": round(seconds, 3)},
    }
    if args.save:
        save_blend(Path(args.save))
        summary["blend"] = str(Path(args.save).resolve())
    return summary


def add_viewneti_data(sub: Subparsers) -> None:
    p = sub.add_parser("viewneti-data", help="ViewNeTI: a .blend's objects rendered from cameras around them into a posed image set")
    p.add_argument("--blend", help="scene to open (default: the file Blender was started with)")
    p.add_argument("--objects", help="comma-separated object or collection names (default: the whole scene)")
    p.add_argument("--views", type=int, default=24)
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(512, 384))
    add_choice(p, "--layout", choices.TRAINING_LAYOUTS)
    p.add_argument("--elevation", type=float, default=15.0, help="the orbit's elevation in degrees")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--background", type=parse_point, help="r,g,b in 0–1 to put the views on (default: transparent)")
    p.add_argument("--seed", type=int, default=0)
    add_output_options(p)
    p.set_defaults(run=viewneti_data)


def viewneti_data(args: argparse.Namespace) -> dict[str, Any]:
    """The render_training_views operator on a .blend's named objects (or the whole scene)."""
    import bpy

    if args.blend:
        bpy.ops.wm.open_mainfile(filepath=str(Path(args.blend).resolve()))
        load_addon()
    names = [n.strip() for n in (args.objects or "").split(",") if n.strip()]
    missing = [n for n in names if n not in bpy.data.objects and n not in bpy.data.collections]
    if missing:
        raise BatchError(f"No object or collection named {', '.join(missing)}")
    for obj in bpy.context.view_layer.objects:
        obj.select_set(False)
    for name in names:
        chosen = [bpy.data.objects[name]] if name in bpy.data.objects else list(bpy.data.collections[name].all_objects)
        for obj in chosen:
            obj.select_set(True)
    out = Path(args.out).resolve()
    start = time.perf_counter()
    run_operator(
        bpy.ops.diffusion3d.render_training_views,
        output_dir=str(out),
        views=args.views,
        width=args.size[0],
        height=args.size[1],
        layout=choices.TRAINING_LAYOUTS.from_cli(args.layout),
        elevation=args.elevation,
        samples=args.samples,
        seed=args.seed,
        transparent=args.background is None,
        background=args.background or (1.0, 1.0, 1.0),
        overwrite=args.overwrite,
    )
    seconds = round(time.perf_counter() - start, 3)
    return {"paths": {"dataset": str(out), "cameras": str(out / "cameras.json")}, "views": args.views, "timings_s": {"render": seconds}}


def add_viewneti_train(sub: Subparsers) -> None:
    p = sub.add_parser("viewneti-train", help="ViewNeTI: fit view and object mappers to posed image sets (a frozen SD 2.x)")
    p.add_argument("--data", required=True, nargs="+", metavar="DIR", help="posed sets made by viewneti-data (several to pre-train)")
    p.add_argument("--model", default="stabilityai/stable-diffusion-2-1", help="the SD 2.x base (v-prediction): folder or repo id")
    add_choice(p, "--mode", choices.TRAINING_MODES)
    p.add_argument("--view-mapper", metavar="DIR", help="single-view: the pre-trained checkpoint whose view mapper stays frozen")
    add_choice(p, "--parameterisation", choices.CAMERA_PARAMETERISATIONS)
    add_choice(p, "--augmentation", choices.AUGMENTATIONS)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=3)
    p.add_argument("--accumulation", type=int, default=3)
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(512, 384))
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run whose checkpoint is in --out")
    add_output_options(p, "the checkpoint folder")
    add_model_options(p)
    p.set_defaults(run=viewneti_train)


def viewneti_train(args: argparse.Namespace) -> dict[str, Any]:
    """The train_viewneti engine job."""
    from diffusion3d.engine.viewneti.train import TrainRequest  # type: ignore[import-not-found]
    from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

    use_model_settings(args)
    request = TrainRequest(
        data_dirs=[str(Path(d).resolve()) for d in args.data],
        model=args.model,
        out_dir=str(Path(args.out).resolve()),
        mode=choices.TRAINING_MODES.from_cli(args.mode),
        view_mapper=str(Path(args.view_mapper).resolve()) if args.view_mapper else "",
        parameterisation=choices.CAMERA_PARAMETERISATIONS.from_cli(args.parameterisation),
        augmentation=choices.AUGMENTATIONS.from_cli(args.augmentation),
        steps=args.steps,
        batch=args.batch,
        accumulation=args.accumulation,
        width=args.size[0],
        height=args.size[1],
        save_every=args.save_every,
        seed=args.seed,
        resume=args.resume,
        access=session.model_access(session.preferences()),
        overwrite=args.overwrite,
    )
    result = run_engine_job("train_viewneti", request)
    return {
        "paths": {"checkpoint": result.checkpoint},
        "steps_done": result.steps_done,
        "last_loss": result.losses[-1] if result.losses else None,
        "warnings": result.warnings,
        "timings_s": {"train": round(result.seconds, 3)},
    }


def add_viewneti_render(sub: Subparsers) -> None:
    p = sub.add_parser("viewneti-render", help="ViewNeTI: a trained checkpoint's view of the object from a camera")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--model", default="stabilityai/stable-diffusion-2-1", help="the base the checkpoint was trained on")
    p.add_argument("--blend", help="a .blend whose --camera to render from")
    p.add_argument("--camera", help="with --blend: the camera object")
    p.add_argument("--azimuth", type=float, help="degrees about the training target (0 from −Y, 90 from +X)")
    p.add_argument("--elevation", type=float, default=15.0)
    p.add_argument("--distance", type=float)
    p.add_argument("--object", help="which object of a pre-trained checkpoint (one per posed set; default the first)")
    add_view_options(p)
    add_output_options(p, "the PNG file to write")
    add_model_options(p)
    p.set_defaults(run=viewneti_render)


def add_view_options(p: argparse.ArgumentParser) -> None:
    """How ViewNeTI views are rendered: size, sampling, the field of view of orbit cameras."""
    p.add_argument("--fov", type=float, default=40.0, help="vertical field of view of orbit cameras")
    p.add_argument("--size", type=int, nargs=2, metavar=("W", "H"), default=(768, 576))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--seed", type=int, default=0)
    add_choice(p, "--scheduler", choices.SCHEDULERS, default=False)


def view_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Views`` settings :func:`add_view_options` reads."""
    scheduler = choices.SCHEDULERS.from_cli(args.scheduler) if args.scheduler else "DPMPP_2M"
    return dict(width=args.size[0], height=args.size[1], steps=args.steps, guidance=args.guidance, scheduler=scheduler, seed=args.seed)


def viewneti_render(args: argparse.Namespace) -> dict[str, Any]:
    """The render_view engine job from a .blend's camera, or an orbit position about the training target."""
    import numpy as np

    from diffusion3d.engine.viewneti.render import RenderViewRequest, Views  # type: ignore[import-not-found]
    from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

    if bool(args.blend) == (args.azimuth is not None) or bool(args.blend) != bool(args.camera):
        raise BatchError("Give either --blend with --camera, or --azimuth with --distance")
    cameras: list[Any] = []
    orbits, fov = [[args.azimuth, args.elevation, args.distance]], args.fov
    if args.blend:
        import bpy

        bpy.ops.wm.open_mainfile(filepath=str(Path(args.blend).resolve()))
        load_addon()
        camera = bpy.data.objects.get(args.camera)
        if camera is None or camera.type != "CAMERA":
            raise BatchError(f"No camera named {args.camera!r} in {args.blend}")
        cameras, orbits, fov = [[list(row) for row in camera.matrix_world]], [], float(np.degrees(camera.data.angle_y))
    elif args.distance is None:
        raise BatchError("--azimuth needs --distance")
    use_model_settings(args)
    out = Path(args.out).resolve()
    request = RenderViewRequest(
        checkpoint=str(Path(args.checkpoint).resolve()),
        model=args.model,
        out_dir=str(out.parent),
        views=Views(
            cameras=cameras,
            orbits=orbits,
            fov_deg=fov,
            object=args.object or "",
            names=[out.name],
            meta_name=f"{out.stem}.json",
            **view_options(args),
        ),
        access=session.model_access(session.preferences()),
        overwrite=args.overwrite,
    )
    result = run_engine_job("render_view", request)
    return {"paths": {"image": result.paths[0]}, "warnings": result.warnings, "timings_s": {"render": round(result.seconds, 3)}}


def add_viewneti_nvs(sub: Subparsers) -> None:
    p = sub.add_parser(
        "viewneti-nvs", help="ViewNeTI: one object image → new views (an object mapper fitted with a pre-trained view mapper frozen)"
    )
    p.add_argument("--image", required=True, help="the object's image (transparent background, or a plain one)")
    p.add_argument("--view-mapper", required=True, metavar="DIR", help="a pre-trained checkpoint (viewneti-train --mode pretrain)")
    p.add_argument("--model", default="stabilityai/stable-diffusion-2-1", help="the base the view mapper was trained on")
    p.add_argument("--image-orbit", type=float, nargs=3, metavar=("AZ", "EL", "DIST"), help="the image's camera (default: estimated)")
    p.add_argument("--image-fov", type=float, default=40.0, help="the image camera's vertical field of view")
    p.add_argument("--orbit", type=float, nargs=3, action="append", required=True, metavar=("AZ", "EL", "DIST"), help="a view to render")
    p.add_argument("--fit-steps", type=int, default=3000)
    add_view_options(p)
    add_output_options(p, "the folder for the views and the fit")
    add_model_options(p)
    p.set_defaults(run=viewneti_nvs)


def viewneti_nvs(args: argparse.Namespace) -> dict[str, Any]:
    """The views_from_image engine job, cameras as orbit positions about the object."""
    from diffusion3d.engine.viewneti.render import Views, orbit_pose  # type: ignore[import-not-found]
    from diffusion3d.engine.viewneti.single_image import ImageViewsRequest  # type: ignore[import-not-found]
    from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

    use_model_settings(args)
    request = ImageViewsRequest(
        image=str(Path(args.image).resolve()),
        view_mapper=str(Path(args.view_mapper).resolve()),
        model=args.model,
        out_dir=str(Path(args.out).resolve()),
        views=Views(orbits=args.orbit, fov_deg=args.fov, **view_options(args)),
        camera=orbit_pose([0.0, 0.0, 0.0], *args.image_orbit).tolist() if args.image_orbit else [],
        fov_deg=args.image_fov,
        fit_steps=args.fit_steps,
        seed=args.seed,
        access=session.model_access(session.preferences()),
        overwrite=args.overwrite,
    )
    result = run_engine_job("views_from_image", request)
    return {
        "paths": {"views": result.paths, "checkpoint": result.checkpoint},
        "image_camera": result.image_camera,
        "warnings": result.warnings,
        "timings_s": {"total": round(result.seconds, 3)},
    }


def add_viewneti_import(sub: Subparsers) -> None:
    p = sub.add_parser(
        "viewneti-import", help="ViewNeTI: the original's released mapper-steps-*.pt files → our checkpoint (pickles: opt in)"
    )
    p.add_argument("--view", required=True, help="mapper-steps-N_view.pt")
    p.add_argument("--object", required=True, help="mapper-steps-N_object.pt")
    p.add_argument("--calibration", required=True, help="DTU's Calibration/cal18 folder (pos_*.txt): the camera ranges the original used")
    p.add_argument("--allow-pickle", action="store_true", help="read the pickled files (their code is not run)")
    add_output_options(p, "the checkpoint folder")
    p.set_defaults(run=viewneti_import)


def viewneti_import(args: argparse.Namespace) -> dict[str, Any]:
    """The import_viewneti engine job."""
    from diffusion3d.engine.viewneti.original import ImportRequest  # type: ignore[import-not-found]

    request = ImportRequest(
        view_file=str(Path(args.view).resolve()),
        object_file=str(Path(args.object).resolve()),
        calibration_dir=str(Path(args.calibration).resolve()),
        out_dir=str(Path(args.out).resolve()),
        allow_pickle=args.allow_pickle,
        overwrite=args.overwrite,
    )
    result = run_engine_job("import_viewneti", request)
    return {"paths": {"checkpoint": result.checkpoint}, "calibration_cameras": result.cameras, "objects": result.objects}


def run_engine_job(name: str, request: Any) -> Any:
    """An engine job through the add-on's client (Blender's Python or the worker), its progress printed, its error one line."""
    from diffusion3d.engine.errors import EngineError  # type: ignore[import-not-found]
    from diffusion3d.operators.machinery import session  # type: ignore[import-not-found]

    def show(p: Any) -> None:
        print(f"[diffusion3d] {name}: {p.done}/{p.total} {p.message}", flush=True)

    try:
        return session.client().run(name, request, on_progress=show)
    except EngineError as exc:
        raise BatchError(str(exc)) from None


def add_merge(sub: Subparsers) -> None:
    p = sub.add_parser("merge", help="join shard data sets (edges/generate-from-edges --shard) into one")
    p.add_argument("--shards", nargs="+", required=True, help="the shard folders")
    add_output_options(p, "the merged dataset folder")
    p.set_defaults(run=merge)


def merge(args: argparse.Namespace) -> dict[str, Any]:
    """Shard folders → one data set, as one unsharded run would have written it."""
    from diffusion3d.engine.dst.merge import DSTMergeRequest  # type: ignore[import-not-found]

    request = DSTMergeRequest([str(Path(d).resolve()) for d in args.shards], str(Path(args.out).resolve()), args.overwrite)
    result = run_engine_job("merge_shards", request)
    return {"paths": {"dataset": result.dataset_dir}, "views": result.views, "annotations": result.annotations}


SUBCOMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    add_capture,
    add_sphere,
    add_demo,
    add_panorama,
    add_panoramas,
    add_upscale,
    add_stereo_video,
    add_edges,
    add_generate_from_edges,
    add_kcf,
    add_dst,
    add_merge,
    add_multiview,
    add_viewneti_data,
    add_viewneti_train,
    add_viewneti_render,
    add_viewneti_nvs,
    add_viewneti_import,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch.py",
        description="Diffusion 3D headless jobs. Under Blender: blender -b [file.blend] --python batch.py -- SUBCOMMAND …",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for add_subcommand in SUBCOMMANDS:
        add_subcommand(sub)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(script_args(argv))
    if getattr(args, "ray", None):
        return run_on_ray(args, script_args(argv))
    try:
        import bpy
    except ImportError:
        print(NEEDS_BLENDER, file=sys.stderr)
        return 2
    try:
        if getattr(args, "blend", None):
            if not Path(args.blend).is_file():
                raise BatchError(f"No such .blend file: {args.blend}")
            bpy.ops.wm.open_mainfile(filepath=str(Path(args.blend).resolve()))
        load_addon()
        summary = {"command": args.command, **args.run(args)}
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # bpy can hang in interpreter shutdown after rendering; never after success
