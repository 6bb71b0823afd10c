"""A Ray cluster of one-CPU nodes on 127.0.0.1, as tests/test_ray.py and bench/bench_ray.py start it (the `ray` beside this Python)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_cluster(nodes: int) -> str:
    """``nodes`` Ray nodes with one CPU each, node k pinned to core k where the machine has it; returns the address.

    Pinned (``taskset``), each node's processes (its raylet, workers and their Blender processes) run on its own
    core only, as on separate machines: Blender's scene sync and BVH builds otherwise spread over every core
    whatever the render threads, and two 1-CPU nodes on one machine would share both cores.
    """
    port = free_port()
    small = ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--disable-usage-stats"]
    # A token file a local ray.init() left in ~/.ray would switch the nodes to token checks they cannot pass;
    # the drivers started later inherit this too
    os.environ["RAY_AUTH_MODE"] = "disabled"
    head = [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard", "false", *small]
    others = [[RAY, "start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", *small]] * (nodes - 1)
    try:
        for core, command in enumerate([head, *others]):
            pinned = ["taskset", "-c", str(core)] if shutil.which("taskset") and core < (os.cpu_count() or 1) else []
            subprocess.run([*pinned, *command], check=True, capture_output=True, timeout=120)
    except BaseException:
        stop_cluster()
        raise
    return f"127.0.0.1:{port}"


def stop_cluster() -> None:
    """Every Ray process on this machine."""
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
