"""``batch.py engine-setup`` for real: a clean folder becomes an engine Python (the CPU build, from the machine's
package sources and pip's cache), a model job runs through it, a second run changes nothing, and (Blender 5.2's line)
a run stopped halfway is finished by the next."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import build_tiny, models_here

ROOT = Path(__file__).resolve().parent.parent
BASE = shutil.which("python3.11")  # a Python whose CPU torch wheel pip finds here (the machine's own mirror and cache)
#: PyTorch's own index is out of reach here (the wheel comes from the machine's mirror): ask it once, not six times
PIP_ENV = {**os.environ, "PIP_RETRIES": "0"}
pytestmark = [pytest.mark.timeout(900), pytest.mark.skipif(BASE is None, reason="needs python3.11 on PATH")]


def setup_engine(folder: Path, *more: str) -> dict:
    command = [sys.executable, str(ROOT / "batch.py"), "engine-setup", "--dir", str(folder), "--torch", "cpu", "--python", str(BASE), *more]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=850, env=PIP_ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("[diffusion3d] engine_setup: 1/6 · torch==2.13.0+cpu: the CPU build, as asked; about ")  # the plan first
    return dict(json.loads(lines[-1]))


@dataclass
class Stopped:
    """A set-up stopped with SIGINT while installing: its exit status, its last line, its marker then."""

    returncode: int
    last_line: str
    marker: dict


def stop_while_installing(folder: Path) -> Stopped:
    command = [sys.executable, str(ROOT / "batch.py"), "engine-setup", "--dir", str(folder), "--torch", "cpu", "--python", str(BASE)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=PIP_ENV)
    assert proc.stdout is not None
    for line in proc.stdout:  # progress lines: "[diffusion3d] engine_setup: DONE/6 …" (a piped line every few seconds)
        if (m := re.search(r"engine_setup: (\d)/6", line)) and int(m[1]) >= 4:  # installing torch, or the rest
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return Stopped(proc.returncode, err.strip().splitlines()[-1], json.loads((folder / "diffusion3d-engine.json").read_text()))


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> tuple[Path, Stopped | None]:
    """The engine made in a clean folder; on the worker line (Blender 5.2) a first run is stopped halfway and the same
    command then finishes it (one install for both promises: CI's time)."""
    folder = tmp_path_factory.mktemp("managed") / "engine"
    stopped = None if models_here() else stop_while_installing(folder)
    made = setup_engine(folder)
    assert made["installed"] and made["ready"] and made["requirement"].endswith("+cpu") and "torch 2.13.0+cpu" in made["check"]
    return Path(made["python"]), stopped


def test_a_clean_folder_becomes_an_engine_that_runs_a_model_job_and_a_second_run_changes_nothing(engine, tmp_path):
    python, _ = engine
    model = build_tiny("tiny_ldm3d:build_tiny_ldm3d", tmp_path / "models" / "tiny-pano", vae_channels=4)
    args = ("panorama", "--models-dir", str(model.parent), "--model", "tiny-pano", "--width", "64", "--steps", "2")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "batch.py"), *args, "--out", str(tmp_path / "pano"), "--engine-python", str(python)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "pano" / "rgb.png").is_file()
    folder = python.parent.parent
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    again = setup_engine(folder)
    assert not again["installed"] and again["ready"] and again["seconds"] < 60
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts) == [
        p for p in before if "__pycache__" not in p
    ]


@pytest.mark.skipif(models_here(), reason="once is enough: the worker line (Blender 5.2)")
def test_a_setup_stopped_halfway_is_not_ready_and_the_next_run_finishes_it(engine):
    python, stopped = engine
    assert stopped is not None
    folder = python.parent.parent
    assert stopped.returncode == 130 and stopped.marker["ready"] is False
    assert (
        stopped.last_line
        == f"interrupted (SIGINT): batch.py engine-setup stopped; the unfinished engine in {folder} (not ready): the same command finishes it"
    )
