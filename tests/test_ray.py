"""Scaling out on a real two-node Ray cluster started on this machine (127.0.0.1, one CPU per node).

The driver is this plain Python (Ray, no Blender); every task runs ``batch.py`` in a fresh process with the Python
that has the bpy module ($DIFFUSION3D_TASK_PYTHON, default .venv/bin/python), as users run shards on their nodes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ray_cluster import start_cluster, stop_cluster
from support import tree

pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[1]
TASK_PYTHON = os.environ.get("DIFFUSION3D_TASK_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]
if not Path(TASK_PYTHON).is_file():
    pytest.skip(f"no Python with bpy for the tasks at {TASK_PYTHON}", allow_module_level=True)


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second node on 127.0.0.1, one CPU each, stopped at the end."""
    address = start_cluster(2)
    try:
        yield address
    finally:
        stop_cluster()


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scene")
    make = (
        "import bpy; bpy.ops.wm.read_factory_settings(use_empty=True); "
        "bpy.ops.mesh.primitive_cube_add(location=(0, 0, 0)); bpy.context.object.name = 'Box'; "
        "bpy.ops.mesh.primitive_uv_sphere_add(location=(3, 0, 0)); bpy.context.object.name = 'Ball'; "
        f"bpy.ops.wm.save_as_mainfile(filepath={str(folder / 'cad.blend')!r})"
    )
    subprocess.run([TASK_PYTHON, "-c", make], check=True, capture_output=True, timeout=120)
    return folder / "cad.blend"


def edges_args(scene: Path, out: Path) -> list[str]:
    return [
        "edges",
        "--blend",
        str(scene),
        "--views",
        "4",
        "--resolution",
        "32",
        "--samples",
        "1",
        "--edges",
        "geometric",
        "--seed",
        "2",
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def single(scene, tmp_path_factory) -> Path:
    """The same job on one machine, without Ray: what every distributed run must equal byte for byte."""
    out = tmp_path_factory.mktemp("single") / "ds"
    proc = subprocess.run([TASK_PYTHON, str(ROOT / "batch.py"), *edges_args(scene, out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def driver(args: list[str], address: str, *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "batch.py"), *args, "--ray", address, "--shards", "4", "--task-python", TASK_PYTHON, *extra]


def run(command: list[str]) -> tuple[subprocess.CompletedProcess, dict]:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = proc.stdout.strip().splitlines()
    return proc, json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def manifest(out: Path) -> dict:
    return json.loads((out.parent / f"{out.name}.shards" / "manifest.json").read_text())


def test_four_shards_on_two_nodes_equal_the_single_machine_run_and_a_second_run_changes_nothing(cluster, scene, single, tmp_path):
    out = tmp_path / "ds"
    proc, summary = run(driver(edges_args(scene, out), cluster))
    assert proc.returncode == 0 and summary["complete"] and summary["done"] == 4 and summary["images"] == 8, proc.stderr[-2000:]
    assert tree(out) == tree(single), "the merged set is the single-machine run, byte for byte"
    nodes = {s["node"] for s in manifest(out)["shards"]}
    assert len(nodes) == 2, f"both nodes ran shards: {nodes}"
    assert [s["state"] for s in manifest(out)["shards"]] == ["merged"] * 4
    assert "[ray] shards 4/4 done, 0 running, 0 failed · 8 images" in proc.stderr
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    proc, again = run(driver(edges_args(scene, out), cluster))
    assert proc.returncode == 0 and again["skipped"] == 4 and again["complete"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before, "nothing was touched"
    assert [s["state"] for s in manifest(out)["shards"]] == ["merged"] * 4, "the set is complete"


def test_a_task_killed_mid_shard_is_retried_and_gives_the_same_bytes(cluster, scene, single, tmp_path):
    out = tmp_path / "ds"
    command = driver(edges_args(scene, out), cluster)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) as process:
        pattern = f"--shard 2/4 --out {out.parent}/{out.name}.shards/"
        deadline, killed = time.monotonic() + 120, False
        while not killed and time.monotonic() < deadline and process.poll() is None:
            found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
            for pid in found:
                os.kill(int(pid), signal.SIGKILL)
                killed = True
            time.sleep(0.02)
        stdout, stderr = process.communicate(timeout=300)
    assert killed, "the shard's process was found and killed"
    assert process.returncode == 0, stderr[-2000:]
    shard = manifest(out)["shards"][1]
    assert shard["state"] == "merged" and shard["attempts"] >= 2
    assert tree(out) == tree(single)


def test_a_driver_killed_mid_run_finishes_the_set_when_started_again(cluster, scene, single, tmp_path):
    out = tmp_path / "ds"
    command = driver(edges_args(scene, out), cluster)
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT) as process:
        path = out.parent / f"{out.name}.shards" / "manifest.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (path.is_file() and any(s["state"] == "done" for s in manifest(out)["shards"])):
            time.sleep(0.05)
        process.kill()
    first = manifest(out)
    assert not first["merged"] and not out.exists(), "nothing is in the set before the merge"
    proc, summary = run(driver(edges_args(scene, out), cluster))
    assert proc.returncode == 0 and summary["complete"] and summary["skipped"] >= 1, proc.stderr[-2000:]
    assert tree(out) == tree(single)
    leftovers = [p.name for p in (out.parent / f"{out.name}.shards").iterdir() if p.name != "manifest.json"]
    assert not leftovers, "no attempt folders are left behind"


def test_ctrl_c_cancels_the_drivers_tasks_within_two_seconds_keeps_finished_shards_and_the_same_command_finishes_the_set(
    cluster, scene, single, tmp_path
):
    out = tmp_path / "ds"
    with subprocess.Popen(
        driver(edges_args(scene, out), cluster), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT
    ) as process:
        path = out.parent / f"{out.name}.shards" / "manifest.json"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (path.is_file() and any(s["state"] == "done" for s in manifest(out)["shards"])):
            time.sleep(0.05)
        begin = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        seconds = time.monotonic() - begin
    assert process.returncode == 130 and seconds < 2.5, (seconds, stderr[-2000:])
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted (SIGINT): batch.py edges stopped; ") and "shards kept in" in last, stderr[-12000:]
    states = [s["state"] for s in manifest(out)["shards"]]
    assert "running" not in states and "done" in states and not out.exists(), states
    time.sleep(2)  # the cancelled tasks' processes end with their Ray workers
    assert subprocess.run(["pgrep", "-f", "--", f"--out {out.parent}/{out.name}.shards/"], capture_output=True).stdout == b""
    proc, summary = run(driver(edges_args(scene, out), cluster))
    assert proc.returncode == 0 and summary["complete"] and summary["skipped"] >= 1, proc.stderr[-2000:]
    assert tree(out) == tree(single)


def test_a_shard_failed_for_good_is_named_nothing_is_merged_and_the_same_command_finishes_the_set(cluster, scene, single, tmp_path):
    out = tmp_path / "ds"
    command = driver(edges_args(scene, out), cluster, "--retries", "0")
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) as process:
        pattern = f"--shard 3/4 --out {tmp_path}/ds.shards/"
        deadline, killed = time.monotonic() + 120, False
        while not killed and time.monotonic() < deadline and process.poll() is None:
            for pid in subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
                killed = True
            time.sleep(0.02)
        stdout, stderr = process.communicate(timeout=300)
    assert killed and process.returncode == 3, stderr[-2000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert not summary["complete"] and summary["paths"]["dataset"] is None and summary["done"] == 3
    (error,) = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert error.startswith("error: edges shard 3/4 failed after 1 attempt(s): ShardProcessDied: the shard's process on ")
    assert "ended with killed by signal 9" in error and [f["index"] for f in summary["failed"]] == [3]
    assert not out.exists(), "nothing is merged while a shard is missing"
    proc, again = run(command)
    assert proc.returncode == 0 and again["complete"] and again["skipped"] == 3, proc.stderr[-2000:]
    assert tree(out) == tree(single)


@pytest.mark.parametrize(
    "case, words",
    [
        ("unreachable", "Cannot reach the Ray cluster at 127.0.0.1:1"),
        ("no-gpus", "The cluster has no GPUs, but each task asks for 1"),
        ("too-many-cpus", "No node has 2 CPUs for a task (the largest has 1)"),
        ("read-only", "Cannot write the shard folder"),
        ("other-command", "holds 4 shards of another command"),
        ("no-ray", "Scaling out needs Ray: install the ray package"),
    ],
)
def test_bad_cluster_input_is_refused_in_one_line(cluster, scene, tmp_path, case, words):
    out = tmp_path / "ds"
    command = driver(edges_args(scene, out), "127.0.0.1:1" if case == "unreachable" else cluster)
    if case == "no-gpus":
        command += ["--gpus-per-task", "1"]
    elif case == "too-many-cpus":
        command += ["--cpus-per-task", "2"]
    elif case == "read-only":  # a file where the shard folder's parent should be (a permission check passes as root)
        (tmp_path / "taken").write_text("a file")
        command = driver(edges_args(scene, tmp_path / "taken" / "ds"), cluster)
    elif case == "other-command":
        (tmp_path / "ds.shards").mkdir()
        other = {
            "format": "diffusion3d-shards/2",
            "job": "edges",
            "parameters": {"DSTAnnotateRequest": {"views_per_object": 9}},
            "output": str(out),
            "shards": [{"index": i, "folder": str(tmp_path / f"s{i}")} for i in range(1, 5)],
        }
        (tmp_path / "ds.shards" / "manifest.json").write_text(json.dumps(other))
    elif case == "no-ray":
        command[0] = TASK_PYTHON  # a Python without Ray
    proc, _ = run(command)
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(lines) == 1 and words in lines[0], proc.stderr[-2000:]
    assert not out.exists()
    if case != "other-command":
        assert not (tmp_path / "ds.shards").exists(), "a refused run leaves no shard folder behind"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_panoramas_from_a_prompt_file_on_the_cluster_equal_the_single_machine_run(cluster, tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from tiny_ldm3d import build_tiny_ldm3d

    build_tiny_ldm3d(tmp_path / "models" / "tiny-pano", vae_channels=4)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cave\na beach\na forest\n", encoding="utf-8")
    args = [
        "panoramas",
        "--prompts",
        str(prompts),
        "--models-dir",
        str(tmp_path / "models"),
        "--model",
        "tiny-pano",
        "--width",
        "64",
        "--steps",
        "2",
        "--device",
        "cpu",
    ]
    threads = {**os.environ, "OMP_NUM_THREADS": "1"}  # as Ray runs a 1-CPU task: float sums depend on the thread count
    command = [TASK_PYTHON, str(ROOT / "batch.py"), *args, "--out", str(tmp_path / "single")]
    alone = subprocess.run(command, capture_output=True, text=True, env=threads)
    assert alone.returncode == 0, alone.stderr[-2000:]
    proc, summary = run(driver([*args, "--out", str(tmp_path / "ray")], cluster))  # 4 shards for 3 prompts: one has none
    assert proc.returncode == 0 and summary["complete"] and summary["images"] == 3, proc.stderr[-2000:]
    assert summary["folders"] == ["prompt-0001", "prompt-0002", "prompt-0003"]
    single, spread = tree(tmp_path / "single"), tree(tmp_path / "ray")
    assert single.keys() == spread.keys()
    for name, data in single.items():
        assert data == spread[name], name


@pytest.fixture(scope="module")
def tiny_controlnet(tmp_path_factory) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "tests" / "engine"))
    from tiny_controlnet import build_tiny_controlnet, build_tiny_sd

    folder = tmp_path_factory.mktemp("controlnet")
    return build_tiny_sd(folder / "sd"), build_tiny_controlnet(folder / "cn")


def dst_args(scene: Path, models: tuple[Path, Path]) -> list[str]:
    views = ["--blend", str(scene), "--views", "3", "--resolution", "32", "--samples", "1", "--edges", "geometric", "--seed", "2"]
    generation = ["--base-model", str(models[0]), "--controlnet", str(models[1]), "--steps", "2", "--device", "cpu"]
    kcf = ["--fraction", "0.25", "--folds", "3", "--epochs", "1", "--image-size", "16", "--backbone", "small"]
    return ["dst", *views, *generation, *kcf]


ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # as Ray runs a 1-CPU task: float sums depend on the thread count


@pytest.fixture(scope="module")
def single_dst(scene, tiny_controlnet, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single-dst") / "ds"
    command = [TASK_PYTHON, str(ROOT / "batch.py"), *dst_args(scene, tiny_controlnet), "--out", str(out)]
    alone = subprocess.run(command, capture_output=True, text=True, env=ONE_THREAD)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert len(json.loads(alone.stdout.strip().splitlines()[-1])["rejected"]) == 2, "a quarter of 6 generated images, rounded up"
    return out


def test_the_dst_chain_on_the_cluster_equals_the_single_machine_run_and_a_second_run_changes_nothing(
    cluster, scene, tiny_controlnet, single_dst, tmp_path
):
    args = [*dst_args(scene, tiny_controlnet), "--out", str(tmp_path / "ds")]
    out = tmp_path / "ds"
    proc, summary = run(driver(args, cluster))
    assert proc.returncode == 0 and summary["complete"], proc.stderr[-2000:]
    assert [(p["job"], p["shards"], p["done"]) for p in summary["phases"]] == [("dst", 4, 4), ("kcf", 3, 3)], "no more shards than folds"
    assert summary["images"] == 6 and len(summary["rejected"]) == 2
    assert "[ray] shards 4/4 done, 0 running, 0 failed · 6 images" in proc.stderr
    assert tree(out) == tree(single_dst), "edges → generate → filter on the cluster is the single-machine run, byte for byte"
    assert manifest(out)["merged"] and json.loads((tmp_path / "ds.shards" / "kcf" / "manifest.json").read_text())["merged"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    proc, again = run(driver(args, cluster))
    assert proc.returncode == 0 and again["complete"] and [p["skipped"] for p in again["phases"]] == [4, 3], proc.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before, "nothing was touched"


def test_a_dst_chain_whose_task_then_driver_are_killed_finishes_with_the_same_bytes(cluster, scene, tiny_controlnet, single_dst, tmp_path):
    out = tmp_path / "ds"
    command = driver([*dst_args(scene, tiny_controlnet), "--out", str(out)], cluster)
    filtering = tmp_path / "ds.shards" / "kcf" / "manifest.json"
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT) as process:
        pattern = f"--shard 2/4 --out {tmp_path}/ds.shards/"
        deadline, killed = time.monotonic() + 200, False
        while time.monotonic() < deadline and process.poll() is None and not filtering.is_file():
            for pid in [] if killed else subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
                killed = True
            time.sleep(0.02)
        process.kill()  # as the filter's shards start
    assert killed and manifest(out)["shards"][1]["attempts"] >= 2, "a generating shard's process was killed and retried"
    assert out.is_dir() and not (out / "kcf.json").exists(), "the generated set is merged; the filter has not touched it"
    proc, summary = run(driver([*dst_args(scene, tiny_controlnet), "--out", str(out)], cluster))
    assert proc.returncode == 0 and summary["complete"] and summary["phases"][0]["skipped"] == 4, proc.stderr[-2000:]
    assert tree(out) == tree(single_dst)


def test_generation_on_the_cluster_joins_into_the_data_set_as_one_machine_generates(cluster, single, tiny_controlnet, tmp_path):
    args = ["--base-model", str(tiny_controlnet[0]), "--controlnet", str(tiny_controlnet[1]), "--steps", "2", "--device", "cpu"]
    alone, spread = tmp_path / "alone", tmp_path / "spread"
    for copy in (alone, spread):
        shutil.copytree(single, copy)
    command = [TASK_PYTHON, str(ROOT / "batch.py"), "generate-from-edges", "--dataset", str(alone), *args]
    assert subprocess.run(command, capture_output=True, env=ONE_THREAD).returncode == 0
    proc, summary = run(driver(["generate-from-edges", "--dataset", str(spread), *args], cluster, "--shards", "2"))
    assert proc.returncode == 0 and summary["complete"] and summary["generated_images"] == 8, proc.stderr[-2000:]
    assert tree(spread) == tree(alone)
    proc, _ = run(driver(["generate-from-edges", "--dataset", str(spread), *args, "--out", str(tmp_path / "x")], cluster))
    assert proc.returncode == 1 and "--out is one shard's folder" in proc.stderr
    shutil.rmtree(tmp_path / "spread.shards")
    proc, _ = run(driver(["generate-from-edges", "--dataset", str(spread), *args], cluster))
    assert proc.returncode == 1 and "generated already holds generated images: --overwrite replaces them" in proc.stderr
    assert not (tmp_path / "spread.shards").exists(), "refused before any task, leaving nothing"
    proc, summary = run(driver(["generate-from-edges", "--dataset", str(spread), *args, "--overwrite"], cluster, "--shards", "2"))
    assert proc.returncode == 0 and summary["complete"] and tree(spread) == tree(alone), proc.stderr[-2000:]
