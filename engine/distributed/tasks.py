"""What runs on a cluster node: one shard's command in a fresh process, into a private folder, moved into place when whole.

Each attempt writes into its own hidden folder beside the shard's and renames
it to the shard's folder only after the command succeeded, so a killed or
repeated attempt never leaves half a shard where a finished one belongs. The
process dies with the Ray worker that started it (Linux), so no orphan keeps
writing after a retry. Its ``[diffusion3d] label: done/total`` lines are the
shard's progress, passed to the driver's board.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

PROGRESS = re.compile(r"^\[diffusion3d\] ([^:]*): (\d+)/(\d+)")
OUT = "{out}"  # the placeholder a shard's command has for its output folder
ATTEMPT = ".attempt-"  # in the name of an attempt's private folder


class ShardProcessDied(Exception):
    """The shard's process was killed or crashed: worth another attempt."""


class ShardRefused(Exception):
    """The shard's job refused its input (one line, the same on every attempt): not retried."""


def _die_with_parent() -> None:
    """In the child: be killed when the process that started it dies (Linux), so no orphan writes on."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def node_name() -> str:
    """This Ray node, as the manifest records it: host and the node's id (several nodes may share a host)."""
    try:
        import ray

        return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
    except Exception:  # outside a Ray task
        return socket.gethostname()


def run_shard(
    index: int, command: list[str], folder: str, cwd: str, label: str | None = "", board: Any = None, threads: int = 0
) -> dict[str, Any]:
    """Run one shard's ``command`` (its ``{out}`` becomes this attempt's folder); return the job's JSON summary with the node's name.

    Its progress lines labelled ``label`` (any, when empty; none, when None) count the shard's images for the board; its renders use
    ``threads`` CPUs (the task's share of the node; 0: all), as its numeric libraries do through Ray's OMP_NUM_THREADS.
    """
    final = Path(folder)
    node = node_name()
    if board is not None:
        board.attempt.remote(index, node)
    if final.is_dir():  # an earlier attempt finished after all
        return {"node": node, "already": True}
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        attempt = final.parent / f".{final.name}{ATTEMPT}{uuid.uuid4().hex[:8]}"
        attempt.mkdir()
    except OSError as exc:
        raise ShardRefused(f"the shard folder {final.parent} is not writable from node {node}: {exc.strerror or exc}") from None
    errors: deque[str] = deque(maxlen=20)
    summary: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        argv = [str(attempt) if part == OUT else part for part in command]
        with subprocess.Popen(
            argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_die_with_parent, env=environment(threads)
        ) as process:
            assert process.stdout is not None and process.stderr is not None
            stderr = process.stderr
            reader = threading.Thread(target=lambda: errors.extend(line.rstrip() for line in stderr), daemon=True)
            reader.start()
            for line in process.stdout:
                match = PROGRESS.match(line)
                if match and board is not None and label is not None and match.group(1).startswith(label):
                    board.update.remote(index, int(match.group(2)), int(match.group(3)))
                elif line.startswith("{"):
                    try:
                        summary = json.loads(line)
                    except ValueError:
                        pass
            code = process.wait()
            reader.join(timeout=10)
        last = next((e for e in reversed(errors) if e.strip()), "")
        if code in (1, 2) and "error:" in last:  # the job's one-line refusal, or a usage error: the same every time
            raise ShardRefused(last.split("error:", 1)[1].strip())
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            raise ShardProcessDied(f"the shard's process on {node} ended with {how}{': ' + last if last else ''}")
        try:
            os.rename(attempt, final)
        except OSError:
            if not final.is_dir():
                raise
        return {**summary, "node": node, "seconds": round(time.perf_counter() - started, 3)}
    finally:
        shutil.rmtree(attempt, ignore_errors=True)


def environment(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    if threads > 0:
        env["DIFFUSION3D_RENDER_THREADS"] = str(threads)  # operators.machinery.render_setup reads it
    return env


class Board:
    """The shards' progress as their tasks report it; the driver reads it (a Ray actor)."""

    def __init__(self) -> None:
        self.progress: dict[int, tuple[int, int]] = {}
        self.attempts: dict[int, int] = {}
        self.nodes: dict[int, str] = {}

    def update(self, index: int, done: int, total: int) -> None:
        self.progress[index] = (done, total)

    def attempt(self, index: int, node: str) -> None:
        self.attempts[index] = self.attempts.get(index, 0) + 1
        self.nodes[index] = node
        self.progress.pop(index, None)  # a new attempt starts from nothing

    def read(self) -> tuple[dict[int, tuple[int, int]], dict[int, int], dict[int, str]]:
        return self.progress, self.attempts, self.nodes
