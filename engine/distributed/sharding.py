"""How each job splits into shards on Ray: what a shard runs, how it is seeded and counted, and how the shards join.

A shard is the job's request (JSON, through :mod:`engine.protocol`) plus its
shard spec: its task runs ``batch.py NAME --request JSON --shard I/N --out
FOLDER`` with the named Python or Blender, which validates it as any run does.
The manifest records the request, so shards that disagree on parameters are
told apart by comparing requests. A job either builds a new output (its merge
writes a new folder) or joins into an existing data set (``updates``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BadInput
from ..protocol import encode
from .driver import ShardedJob
from .tasks import OUT


def shardless(request: Any) -> Any:
    """A request as the Ray driver checks it: without what its shards' own options set (their folders, their share)."""
    mine = {"shard": "", "dataset_dir": "", "out_dir": "", "scores_dir": ""}
    return dataclasses.replace(request, **{k: v for k, v in mine.items() if k in {f.name for f in dataclasses.fields(request)}})


def shared(requests: list[Any], out_field: str) -> dict[str, Any]:
    """The requests as every shard shares them (the manifest's key and the tasks' ``--request``): without what a shard's own
    options set (``--shard``, and ``--out``: ``out_field``), and without ``overwrite`` (a shard writes into a folder of its own)."""
    own = {"shard": "", out_field: "", "overwrite": False}
    with tempfile.TemporaryDirectory() as scratch:  # requests hold no arrays here; encode needs a folder for any that would
        return {
            type(r).__name__: encode(dataclasses.replace(r, **{k: v for k, v in own.items() if hasattr(r, k)}), Path(scratch))
            for r in requests
        }


def sharded_job(
    name: str, requests: list[Any], prefix: list[str], output: str | Path, count: int, out_field: str, **how: Any
) -> ShardedJob:
    """Shard I of N runs ``prefix NAME --request JSON --shard I/N --out {its folder}`` (``--out`` sets ``out_field``);
    ``how``: ShardedJob's other fields."""
    parameters = shared(requests, out_field)
    payload = json.dumps(parameters, separators=(",", ":"))

    def command(i: int, n: int) -> list[str]:
        return [*prefix, name, "--request", payload, "--shard", f"{i}/{n}", "--out", OUT]

    return ShardedJob(name, parameters, Path(output).resolve(), count, command, **how)


def _seconds(key: str) -> Callable[[dict[str, Any]], float]:
    return lambda summary: float(summary.get("timings_s", {}).get(key, 0.0))


def _count(key: str) -> Callable[[dict[str, Any]], int]:
    return lambda summary: int(summary.get(key, 0)) if not isinstance(summary.get(key), list) else len(summary[key])


def _view_seeds(seed: int) -> Callable[[int, int], dict[str, Any]]:
    return lambda i, n: {"seed": seed, "views": f"{i}/{n}"}


def merge_views(shards: list[Path], output: Path) -> dict[str, Any]:
    from ..dst.merge import merge_datasets

    merged = merge_datasets(shards, output)
    return {"views": merged.views, "annotations": merged.annotations}


def edges(requests: list[Any], prefix: list[str], count: int) -> list[ShardedJob]:
    """Shards of views, merged into one data set; images counted as views rendered."""
    render = requests[0]
    job = sharded_job(
        "edges",
        requests,
        prefix,
        render.dataset_dir,
        count,
        "dataset_dir",
        merge=merge_views,
        seeds=_view_seeds(render.seed),
        images=_count("views"),
        work=_seconds("edges"),
        progress_label="Rendering views",
    )
    return [job]


def generate_from_edges(requests: list[Any], prefix: list[str], count: int) -> list[ShardedJob]:
    """Each shard generates into its own folder; the join copies them into the data set."""
    generation = requests[0]
    if generation.out_dir:
        raise BadInput("--out is one shard's folder: on Ray the images go into the data set once every shard is done")
    dataset = Path(generation.dataset_dir)

    def check() -> None:  # the shards write elsewhere: the join would refuse the data set's images only after all the work
        if not generation.overwrite and any((dataset / "generated").glob("*.png")):
            raise BadInput(f"{dataset / 'generated'} already holds generated images: --overwrite replaces them")

    def join(shards: list[Path], dataset: Path) -> dict[str, Any]:
        from ..dst.generate import join_generated

        return {"generated_images": len(join_generated(shards, dataset, generation.overwrite))}

    job = sharded_job(
        "generate-from-edges",
        requests,
        prefix,
        dataset,
        count,
        "out_dir",
        merge=join,
        check=check,
        seeds=_view_seeds(generation.seed),
        images=_count("generated_images"),
        work=_seconds("generate"),
        progress_label=None,  # its progress counts denoising steps, not images
        needs_gpu=True,
        updates=True,
    )
    return [job]


def kcf(requests: list[Any], prefix: list[str], count: int) -> list[ShardedJob]:
    """Each shard trains its folds and writes their scores into its folder; the join filters the data set."""
    filtering = requests[0]
    if filtering.scores_dir:
        raise BadInput("--out is one shard's folder: on Ray the scores are joined into the data set once every shard is done")
    return [filter_job(filtering, requests[1:], prefix, count)]


def filter_job(filtering: Any, also: list[Any], prefix: list[str], count: int) -> ShardedJob:
    """The K-fold filter's folds as shards (``also``: the other requests its tasks run with, such as the engine's Python)."""

    def join(shards: list[Path], dataset: Path) -> dict[str, Any]:
        from ..dst.filter import join_scores

        result = join_scores(dataset, sorted(path for shard in shards for path in shard.glob("scores-*.json")), filtering.fraction)
        return {"scored": result.scored, "rejected": [Path(p).name for p in result.rejected]}

    return sharded_job(
        "kcf",
        [filtering, *also],
        prefix,
        filtering.dataset_dir,
        min(count, filtering.folds),  # a shard trains folds I, I + N, …: more shards than folds would idle
        "scores_dir",
        merge=join,
        seeds=lambda i, n: {"seed": filtering.seed, "folds": list(range(i - 1, filtering.folds, n))},
        images=_count("scored"),
        work=_seconds("kcf"),
        progress_label=None,  # its progress counts epochs
        needs_gpu=True,
        updates=True,
    )


def dst(requests: list[Any], prefix: list[str], count: int) -> list[ShardedJob]:
    """Shards render and generate into their own folders and are merged; then the filter's folds are sharded."""
    render, _, filtering, chain, *also = requests
    rendered = sharded_job(
        "dst",
        requests,
        prefix,
        render.dataset_dir,
        count,
        "dataset_dir",
        merge=merge_views,  # a new data set, with each shard's generated images
        seeds=_view_seeds(render.seed),
        images=_count("generated_images"),
        work=lambda summary: float(sum(summary.get("timings_s", {}).values())),
        progress_label=None,
        needs_gpu=True,
    )
    if not chain.filter:
        return [rendered]
    kept = [r for r in also if "blend" not in {f.name for f in dataclasses.fields(r)}]  # the filter needs no scene
    return [rendered, filter_job(dataclasses.replace(filtering, dataset_dir=str(rendered.output), shard=""), kept, prefix, count)]


def panoramas(requests: list[Any], prefix: list[str], count: int) -> list[ShardedJob]:
    """Each shard's prompt folders moved into the output together; images counted as prompts made."""
    from ..world.prompt_lists import read_prompts, select

    listing = requests[0]
    prompts = read_prompts(Path(listing.prompts), requests[1].seed)

    def seeds(i: int, n: int) -> dict[str, Any]:
        return {p.folder: p.seed for p in select(prompts, f"{i}/{n}", listing.lines)}

    job = sharded_job(
        "panoramas",
        requests,
        prefix,
        listing.out_dir,
        count,
        "out_dir",
        merge=join_folders,
        seeds=seeds,
        images=_count("prompts"),
        progress_label="Panoramas",
        needs_gpu=True,
    )
    return [job]


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
                    raise BadInput(f"Two shards both made {child.name}: they disagree, nothing was joined")
                if child.is_dir():
                    shutil.copytree(child, staging / child.name, copy_function=link_or_copy)
                else:
                    link_or_copy(child, staging / child.name)
                names.append(child.name)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"folders": sorted(names)}
