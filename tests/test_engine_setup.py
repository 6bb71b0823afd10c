"""``batch.py engine-setup`` for real: a clean folder becomes an engine Python (the CPU build, from the machine's
package sources and pip's cache), a model job runs through it, a second run changes nothing, and (Blender 5.2's line)
a run stopped halfway is finished by the next."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import build_tiny, models_here

ROOT = Path(__file__).resolve().parent.parent
BASE = shutil.which("python3.11")  # a Python whose CPU torch wheel pip finds here (the machine's own mirror and cache)
pytestmark = [pytest.mark.timeout(900), pytest.mark.skipif(BASE is None, reason="needs python3.11 on PATH")]


def setup_engine(folder: Path, *more: str) -> dict:
    command = [sys.executable, str(ROOT / "batch.py"), "engine-setup", "--dir", str(folder), "--torch", "cpu", "--python", str(BASE), *more]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=850)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("[diffusion3d] engine_setup: 1/6 · torch==2.13.0+cpu: the CPU build, as asked; about ")  # the plan first
    return dict(json.loads(lines[-1]))


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("managed") / "engine"
    made = setup_engine(folder)
    assert made["installed"] and made["ready"] and made["requirement"].endswith("+cpu") and "torch 2.13.0+cpu" in made["check"]
    return Path(made["python"])


def test_a_clean_folder_becomes_an_engine_that_runs_a_model_job_and_a_second_run_changes_nothing(engine, tmp_path):
    model = build_tiny("tiny_ldm3d:build_tiny_ldm3d", tmp_path / "models" / "tiny-pano", vae_channels=4)
    args = ("panorama", "--models-dir", str(model.parent), "--model", "tiny-pano", "--width", "64", "--steps", "2")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "batch.py"), *args, "--out", str(tmp_path / "pano"), "--engine-python", str(engine)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "pano" / "rgb.png").is_file()
    folder = engine.parent.parent
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    again = setup_engine(folder)
    assert not again["installed"] and again["ready"] and again["seconds"] < 60
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts) == [
        p for p in before if "__pycache__" not in p
    ]


@pytest.mark.skipif(models_here(), reason="once is enough: the worker line (Blender 5.2)")
def test_a_setup_stopped_halfway_is_not_ready_and_the_next_run_finishes_it(tmp_path):
    folder = tmp_path / "engine"
    command = [sys.executable, str(ROOT / "batch.py"), "engine-setup", "--dir", str(folder), "--torch", "cpu", "--python", str(BASE)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # progress lines: "[diffusion3d] engine_setup: DONE/6 …" (a piped line every few seconds)
        if (m := re.search(r"engine_setup: (\d)/6", line)) and int(m[1]) >= 4:  # installing torch, or the rest
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1].endswith(f"the unfinished engine in {folder} (not ready): the same command finishes it")
    assert json.loads((folder / "diffusion3d-engine.json").read_text())["ready"] is False
    finished = setup_engine(folder)
    assert finished["installed"] and finished["ready"]
