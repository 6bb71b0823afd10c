"""The ``engine_setup`` job: a managed engine Python made, filled and checked, in a folder of its own.

1. **Plan** (nothing written): the torch build for this machine (:mod:`.torch_choice`), its reason and download size;
   the base Python (one that can make a virtual environment, 3.11–3.13); the disk space it needs. A folder that holds
   something else than our engine is refused, never deleted.
2. **Environment**: ``python -m venv`` and our marker file first (so a run stopped halfway is ours to resume), then
   pip's newest (its ``raw`` progress), torch at the chosen build, the engine's requirements
   (``requirements-engine.txt`` here). pip's cache makes a second or resumed run fetch nothing again.
3. **Check**: ``python -m engine info`` in the new environment: torch at the planned version, the device the build is
   for. Only then is the marker marked ready, and only a ready engine is one to select.

pip runs in the new environment only, never in the Python that started the job (Blender's).
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import interrupts
from ..choices import TORCH_BUILDS
from ..errors import BadInput, JobCancelled
from ..info import InfoResult, folder_mb
from ..params import INPUT_FILE, OUTPUT_FOLDER, param
from ..progress import Reporter
from .pip_progress import PipProgress
from .torch_choice import TorchChoice, choose, detect

HERE = Path(__file__).resolve().parent
ENGINE_ROOT = HERE.parent.parent  # the folder holding the engine package: ``python -m engine`` runs there
REQUIREMENTS = HERE / "requirements-engine.txt"
MODELS = HERE / "requirements-models.txt"
MARKER = "diffusion3d-engine.json"
SUPPORTED = ((3, 11), (3, 13))  # the Pythons torch and the pins support, oldest and newest
INSTALLED_PER_DOWNLOADED = 4  # unpacked wheels take about this many times their download


@dataclass
class EngineSetupRequest:
    folder: str = param(
        "", "Folder", "Where the engine's environment goes (made if missing)", path=OUTPUT_FOLDER, cli="--dir", cli_required=True
    )
    torch: str = param("AUTO", "Torch", "Which torch build to install", choices=TORCH_BUILDS)
    python: str = param(
        "",
        "Base Python",
        "The Python 3.11–3.13 to make the engine from; empty: this one if it can, else python3.13…3.11 on PATH",
        path=INPUT_FILE,
    )
    wheels: str = param(
        "", "Wheel Mirror", "A folder or URL of wheels to install from first (pip --find-links), such as a studio's own mirror"
    )
    index_url: str = param("", "Package Index", "A package index to use instead of PyPI and PyTorch's (pip --index-url)")
    upgrade: bool = param(False, "Repair", "Install every package again at its pinned version, even where one is there")
    plan_only: bool = param(False, "Plan Only", "Say what would be installed, why and how much, and install nothing", cli="--plan")
    remove: bool = param(False, "Remove", "Delete the engine in the folder (only one Set Up Engine made: it holds our marker file)")
    online: bool = True  # filled by the operator: Blender's online access


@dataclass
class EngineSetupResult:
    folder: str = ""
    python: str = ""  # the engine's interpreter, to select
    build: str = ""
    requirement: str = ""
    reason: str = ""
    download_mb: int = 0
    installed: bool = False  # False: planned only, or the engine was there already
    ready: bool = False
    removed: bool = False
    check: str = ""  # the check's: Python, packages, devices
    size_mb: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """What batch.py prints of it."""
        return dataclasses.asdict(self)


def torch_version() -> str:
    """The engine's torch pin, from its requirements."""
    for line in MODELS.read_text(encoding="utf-8").splitlines():
        if m := re.fullmatch(r"torch==([\w.]+)", line.strip()):
            return m[1]
    raise RuntimeError(f"{MODELS} pins no torch")


def environment_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def read_marker(folder: Path) -> dict[str, object] | None:
    try:
        return dict(json.loads((folder / MARKER).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _write_marker(folder: Path, choice: TorchChoice, ready: bool) -> None:
    text = json.dumps({"engine": "diffusion3d", "requirement": choice.requirement, "build": choice.build, "ready": ready}, indent=1)
    (folder / MARKER).write_text(text + "\n", encoding="utf-8")


def _ours_or_empty(folder: Path) -> bool:
    return not folder.exists() or read_marker(folder) is not None or not any(folder.iterdir())


def _python_version(python: str) -> tuple[int, int] | None:
    """The version of a Python that can make a virtual environment with pip; None if it cannot."""
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv, ensurepip; print(*sys.version_info[:2])"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def base_python(asked: str) -> str:
    """The Python to make the engine from: the one asked, else this one, else python3.13…3.11 on PATH."""
    low, high = SUPPORTED
    candidates = (
        [asked] if asked else [sys.executable, *filter(None, (shutil.which(f"python3.{m}") for m in range(high[1], low[1] - 1, -1)))]
    )
    for python in candidates:
        version = _python_version(python)
        if version is not None and low <= version <= high:
            return python
        if asked:
            got = f"Python {version[0]}.{version[1]}" if version else "not a Python that can make a virtual environment"
            raise BadInput(f"Base Python {asked} is {got}: the engine needs Python 3.11–3.13 with venv and ensurepip")
    raise BadInput(
        "No Python 3.11–3.13 that can make a virtual environment was found (this one cannot, and none is on PATH): "
        "install Python 3.11, 3.12 or 3.13 (python.org, or your system's python3-venv package) and choose it as the base Python"
    )


def _free_mb(folder: Path) -> int:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free // 2**20


def _pip_sources(r: EngineSetupRequest, torch_index: str = "") -> list[str]:
    """Where pip looks: the mirror and index asked for; else PyPI (or pip's own settings), and ``torch_index`` too
    (PyTorch's, for torch alone: asking it for every package would cost a round trip each)."""
    sources = ["--find-links", r.wheels] if r.wheels else []
    if r.index_url:
        return [*sources, "--index-url", r.index_url]
    return [*sources, *(["--extra-index-url", torch_index] if torch_index else [])]


def _run_pip(python: Path, args: list[str], report: Reporter, what: str) -> None:
    """``python -m pip ARGS``, its progress told to ``report``; cancel stops it; its error is one line."""
    progress = PipProgress()
    command = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PIP_NO_COLOR": "1"}
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
        encoding="utf-8",
        errors="replace",
    )
    stdout = proc.stdout
    assert stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:  # pip may print nothing for a while (unpacking torch): cancel is checked meanwhile
        for line in stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        while (line := _next(lines, report)) is not None:
            note = progress.feed(line)
            if note:
                report.note(note)
    except JobCancelled:
        _stop(proc)
        raise
    if proc.wait() != 0:
        reason = progress.errors[-1] if progress.errors else f"pip exited with status {proc.returncode}"
        raise BadInput(f"Installing {what} failed: {reason}")


def _next(lines: queue.Queue[str | None], report: Reporter) -> str | None:
    """pip's next line (None when it has ended), honouring cancel every fifth of a second while waiting."""
    while True:
        try:
            return lines.get(timeout=0.2)
        except queue.Empty:
            report.token.check()


def _stop(proc: subprocess.Popen[str]) -> None:
    """End pip and what it started (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM) if hasattr(os, "killpg") else proc.terminate()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()


def check_environment(python: Path, choice: TorchChoice) -> tuple[str, list[str]]:
    """``python -m engine info`` in the environment: its summary, and what is wrong for ``choice`` (nothing: ready)."""
    out = subprocess.run([str(python), "-m", "engine", "info"], cwd=ENGINE_ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return "", [f"the engine does not start there: {(out.stderr.strip().splitlines() or ['no output'])[-1]}"]
    info = InfoResult(**json.loads(out.stdout))  # its problems include a GPU build that sees no GPU
    wanted, installed = choice.requirement.split("==", 1)[1], info.packages.get("torch")
    return info.summary(), info.problems + ([f"torch is {installed}, not {wanted}"] if installed and installed != wanted else [])


def _remove(folder: Path, started: float) -> EngineSetupResult:
    """An engine this made, deleted (an empty or missing folder: nothing to do)."""
    result = EngineSetupResult(str(folder), str(environment_python(folder)))
    if read_marker(folder) is not None:
        result.size_mb = folder_mb(folder)
        shutil.rmtree(folder)
        result.removed = True
    result.seconds = time.perf_counter() - started
    return result


def engine_setup(r: EngineSetupRequest, report: Reporter) -> EngineSetupResult:
    started = time.perf_counter()
    folder = Path(r.folder).expanduser().absolute()
    if not _ours_or_empty(folder):
        raise BadInput(
            f"{folder} holds other files and no {MARKER}: it is not a Diffusion 3D engine; choose an empty or new folder (nothing was deleted)"
        )
    if r.remove:
        return _remove(folder, started)
    choice = choose(detect(), r.torch, torch_version())
    result = EngineSetupResult(
        str(folder), str(environment_python(folder)), choice.build, choice.requirement, choice.reason, choice.download_mb
    )
    report.total = 6
    report.step(f"{choice.requirement}: {choice.reason}; about {choice.download_mb:,} MB to download")
    python = environment_python(folder)
    marker = read_marker(folder)
    if (
        marker is not None
        and marker.get("ready")
        and marker.get("requirement") == choice.requirement
        and not r.upgrade
        and python.is_file()
    ):
        summary, problems = check_environment(python, choice)
        if not problems:
            result.ready, result.check, result.size_mb = True, summary, folder_mb(folder)
            report.step(f"Already set up: {summary}", done=report.total)
            result.seconds = time.perf_counter() - started
            return result
    if r.plan_only:
        result.seconds = time.perf_counter() - started
        return result
    if not r.online:
        raise BadInput("Setting up the engine downloads packages: turn on Blender's online access (Preferences → System → Network)")
    need = choice.download_mb * INSTALLED_PER_DOWNLOADED
    if marker is None:  # a new engine (a resumed one holds most of its room already)
        free = _free_mb(folder)
        if free < need:
            raise BadInput(f"The engine needs about {need:,} MB on disk and {folder}'s drive has {free:,} MB free")
    base = base_python(r.python)

    report.step(f"Making the environment with {base}")
    if not python.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _write_marker(folder, choice, ready=False)  # first: a run stopped from here on is ours to resume
        interrupts.keep(f"the unfinished engine in {folder} (not ready): the same command finishes it")
        made = subprocess.run([base, "-m", "venv", str(folder)], capture_output=True, text=True, timeout=600)
        if made.returncode != 0:
            raise BadInput(f"Making the environment failed: {(made.stderr.strip().splitlines() or ['no output'])[-1]}")
    else:
        _write_marker(folder, choice, ready=False)
        interrupts.keep(f"the engine in {folder}, not ready: the same command repairs it")
    again = ["--force-reinstall"] if r.upgrade else []
    report.step("Updating pip")
    _run_pip(python, ["--upgrade", "pip", *_pip_sources(r)], report, "pip")
    report.step(f"Installing {choice.requirement}")
    # torch alone from its index (its dependencies come with the engine's packages, from PyPI: one round trip there)
    _run_pip(
        python,
        ["--progress-bar", "raw", "--no-deps", *again, *_pip_sources(r, choice.index_url), choice.requirement],
        report,
        choice.requirement,
    )
    report.step("Installing the engine's packages")
    _run_pip(python, ["--progress-bar", "raw", *_pip_sources(r), "-r", str(REQUIREMENTS)], report, "the engine's packages")
    summary, problems = check_environment(python, choice)
    if problems:
        raise BadInput(f"The engine in {folder} does not pass its check: {'; '.join(problems)} (Repair installs it again)")
    _write_marker(folder, choice, ready=True)
    result.installed, result.ready, result.check, result.size_mb = True, True, summary, folder_mb(folder)
    report.step(f"Ready: {summary}")
    result.seconds = time.perf_counter() - started
    return result
