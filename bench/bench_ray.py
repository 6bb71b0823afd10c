"""Scaling out on Ray: a task's overhead against its shard's size, and one node against two for the same data set.

Run from the repo root with a Python that has Ray (the driver; no bpy needed)::

    .venv-engine/bin/python bench/bench_ray.py [--task-python .venv/bin/python]
    .venv-engine/bin/python bench/bench_ray.py --address HEAD:6379 --out /shared/bench   # a real cluster (see below)

Without ``--address`` it starts its own clusters on 127.0.0.1: one node with
one CPU, then two nodes with one CPU each, node k pinned to core k
(``taskset``), so each node has its own core on a 2-core machine; each task
renders with the CPUs it was given (Cycles threads follow ``--cpus-per-task``).
The job is 3D-DST ``edges`` on two objects.

* ``overhead``: one shard of 6, 26 and 50 views on one node; the task's wall
  time against the seconds the job itself reports (rendering and annotating):
  the rest is scheduling, process start, Blender's import, the scene's load
  and the output's move. Target: under 10% of a 50-view shard.
* ``scaling``: 200 views in 8 shards on one node, then on two. Target: two
  nodes at least 1.6× faster. Each driver run also spends 3–4 s of its own
  (joining the cluster, shipping the engine, merging), which a short job
  would weigh more than a real one.
* ``chain``: the ``dst`` chain (edges → generate → filter) with tiny
  random-weight SD 1.5 + ControlNet models on the two nodes: each step's wall
  time and a model task's overhead (its process also imports torch and loads
  the models, which the job's own seconds do not count). No target: what a
  model shard costs before its first image.

On a real cluster, run the overhead part on it as above and
the scaling part by timing the same command with the cluster at one node and
at two (``ray start`` on the second). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO_ROOT, command_line, emit, machine_info, run_main

sys.path.insert(0, str(REPO_ROOT / "tests"))
from ray_cluster import start_cluster, stop_cluster

SCALING_VIEWS, SCALING_SHARDS = 200, 8


def make_scene(task_python: str, folder: Path) -> Path:
    make = (
        "import bpy; bpy.ops.wm.read_factory_settings(use_empty=True); "
        "bpy.ops.mesh.primitive_monkey_add(location=(0, 0, 0)); bpy.context.object.name = 'Suzanne'; "
        "bpy.ops.mesh.primitive_torus_add(location=(3, 0, 0)); bpy.context.object.name = 'Torus'; "
        f"bpy.ops.wm.save_as_mainfile(filepath={str(folder / 'cad.blend')!r})"
    )
    subprocess.run([task_python, "-c", make], check=True, capture_output=True, timeout=120)
    return folder / "cad.blend"


def edges(address: str, scene: Path, out: Path, views: int, shards: int, args: argparse.Namespace) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one distributed edges run (``views`` per object), and its manifest."""
    command = [
        sys.executable,
        str(REPO_ROOT / "batch.py"),
        "edges",
        "--blend",
        str(scene),
        "--views",
        str(views // 2),
        "--resolution",
        str(args.resolution),
        "--samples",
        str(args.samples),
        "--out",
        str(out),
        "--ray",
        address,
        "--shards",
        str(shards),
        "--task-python",
        args.task_python,
    ]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"edges on Ray failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    manifest = json.loads((out.parent / f"{out.name}.shards" / "manifest.json").read_text())
    return seconds, manifest


def chain(address: str, scene: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The dst chain with tiny models (12 views, 4 shards, 3 folds): each step's wall time and its tasks' overhead."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "engine"))
    from tiny_controlnet import build_tiny_controlnet, build_tiny_sd

    sd, cn = build_tiny_sd(out.parent / "tiny-sd"), build_tiny_controlnet(out.parent / "tiny-cn")
    command = [
        *[sys.executable, str(REPO_ROOT / "batch.py"), "dst", "--blend", str(scene), "--views", "6", "--resolution", "64"],
        *["--samples", "1", "--base-model", str(sd), "--controlnet", str(cn), "--steps", "4", "--device", "cpu"],
        *["--folds", "3", "--epochs", "2", "--image-size", "32", "--backbone", "small", "--out", str(out)],
        *["--ray", address, "--shards", "4", "--task-python", args.task_python],
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"dst on Ray failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    steps = []
    for phase, folder in zip(summary["phases"], (out.parent / f"{out.name}.shards", out.parent / f"{out.name}.shards" / "kcf")):
        shards = json.loads((folder / "manifest.json").read_text())["shards"]
        overheads = [s["seconds"] - s["work_seconds"] for s in shards]
        steps.append(
            {
                "job": phase["job"],
                "shards": phase["shards"],
                "wall_s": phase["seconds"],
                "task_s_mean": round(sum(s["seconds"] for s in shards) / len(shards), 2),
                "overhead_s_mean": round(sum(overheads) / len(overheads), 2),
            }
        )
    return {"views": 12, "generated_images": summary["images"], "total_s": summary["timings_s"]["total"], "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--task-python", default=str(REPO_ROOT / ".venv" / "bin" / "python"), help="a Python with bpy for the tasks")
    parser.add_argument("--address", help="an existing cluster (then only the overhead part runs, on it)")
    parser.add_argument("--out", help="a folder every node reaches (default: a temporary one here)")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    args.task_python = os.path.abspath(args.task_python)
    work = Path(args.out or tempfile.mkdtemp(prefix="d3d-bench-ray-"))
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "ray", "command": command_line(), "machine": machine_info()}
    result["settings"] = {"resolution": args.resolution, "samples": args.samples, "objects": 2}
    scene = make_scene(args.task_python, work)
    try:
        address = args.address or start_cluster(1)
        overhead = []
        for views in (6, 26, 50):
            seconds, manifest = edges(address, scene, work / f"overhead-{views}", views, 1, args)
            shard = manifest["shards"][0]
            extra = shard["seconds"] - shard["work_seconds"]
            overhead.append(
                {
                    "views": views,
                    "driver_s": round(seconds, 2),
                    "task_s": shard["seconds"],
                    "job_s": shard["work_seconds"],
                    "overhead_s": round(extra, 2),
                    "overhead_fraction": round(extra / shard["seconds"], 3),
                }
            )
        result["overhead"] = overhead
        result["meets_overhead_target_10_percent_at_50_views"] = overhead[-1]["overhead_fraction"] < 0.10
        if not args.address:
            one, _ = edges(address, scene, work / "one-node", SCALING_VIEWS, SCALING_SHARDS, args)
            stop_cluster()
            address = start_cluster(2)
            two, manifest = edges(address, scene, work / "two-nodes", SCALING_VIEWS, SCALING_SHARDS, args)
            nodes = sorted({s["node"] for s in manifest["shards"]})
            result["scaling"] = {
                "views": SCALING_VIEWS,
                "shards": SCALING_SHARDS,
                "one_node_s": round(one, 2),
                "two_nodes_s": round(two, 2),
                "speedup": round(one / two, 2),
                "nodes_used": len(nodes),
            }
            result["meets_speedup_target_1_6"] = one / two >= 1.6
            result["how"] = (
                "a 2-core machine: each Ray node gets one CPU (--num-cpus 1) and is pinned to its own core (taskset -c K), "
                "so its tasks run on that core only, as on separate machines; each task renders with one thread"
            )
            result["chain"] = chain(address, scene, work / "chain", args)
    finally:
        if not args.address:
            stop_cluster()
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    emit(result)


if __name__ == "__main__":
    run_main(main, "ray")
