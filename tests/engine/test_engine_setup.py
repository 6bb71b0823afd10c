"""Setting up a managed engine Python: the torch build chosen from what was detected (a pure function, against a table),
pip's progress read from its own lines, and every refusal before anything is written (the install itself:
tests/test_engine_setup.py)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from engine.errors import BadInput
from engine.install import setup
from engine.install.pip_progress import PipProgress
from engine.install.torch_choice import PYTORCH_INDEX, Facts, InstalledTorch, choose, misfit
from engine.progress import CancelToken, Reporter

V = "2.13.0"


@pytest.mark.parametrize(
    "facts, asked, requirement, index",
    [
        (Facts("Linux", "x86_64", "590.44.01"), "AUTO", f"torch=={V}+cu130", PYTORCH_INDEX + "cu130"),
        (Facts("Linux", "x86_64", "580.65.06"), "AUTO", f"torch=={V}+cu130", PYTORCH_INDEX + "cu130"),
        (Facts("Linux", "x86_64", "580.65.05"), "AUTO", f"torch=={V}+cu126", PYTORCH_INDEX + "cu126"),
        (Facts("Linux", "x86_64", "535.104.05"), "AUTO", f"torch=={V}+cu126", PYTORCH_INDEX + "cu126"),
        (Facts("Linux", "x86_64", "525.60.13"), "AUTO", f"torch=={V}+cu126", PYTORCH_INDEX + "cu126"),
        (Facts("Windows", "AMD64", "528.33"), "AUTO", f"torch=={V}+cu126", PYTORCH_INDEX + "cu126"),
        (Facts("Windows", "AMD64", "581.15"), "AUTO", f"torch=={V}+cu130", PYTORCH_INDEX + "cu130"),
        (Facts("Linux", "x86_64", "590.44.01"), "CPU", f"torch=={V}+cpu", PYTORCH_INDEX + "cpu"),
        (Facts("Linux", "x86_64"), "AUTO", f"torch=={V}+cpu", PYTORCH_INDEX + "cpu"),
        (Facts("Windows", "AMD64"), "AUTO", f"torch=={V}+cpu", PYTORCH_INDEX + "cpu"),
        (Facts("Linux", "x86_64", rocm="6.4.1"), "AUTO", f"torch=={V}+rocm6.4", PYTORCH_INDEX + "rocm6.4"),
        (Facts("Linux", "x86_64"), "ROCM", f"torch=={V}+rocm6.4", PYTORCH_INDEX + "rocm6.4"),
        (Facts("Darwin", "arm64"), "AUTO", f"torch=={V}", ""),
        (Facts("Darwin", "arm64"), "MPS", f"torch=={V}", ""),
        (Facts("Linux", "aarch64"), "AUTO", f"torch=={V}", ""),
        (Facts("Linux", "aarch64", "580.95.05"), "AUTO", f"torch=={V}+cu130", PYTORCH_INDEX + "cu130"),
    ],
)
def test_the_torch_build_follows_the_machine_as_the_table_says(facts, asked, requirement, index):
    choice = choose(facts, asked, V)
    assert (choice.requirement, choice.index_url) == (requirement, index)
    assert choice.reason and choice.download_mb > 0


@pytest.mark.parametrize(
    "facts, asked, words",
    [
        (
            Facts("Linux", "x86_64", "470.256.02"),
            "AUTO",
            "470.256.02 is too old for torch 2.13.0's CUDA builds (they need 525.60.13 or newer)",
        ),
        (Facts("Windows", "AMD64", "516.94"), "CUDA", "they need 528.33 or newer"),
        (Facts("Linux", "x86_64"), "CUDA", "No NVIDIA driver found"),
        (Facts("Windows", "AMD64"), "ROCM", "ROCm builds of torch are for Linux on x86-64 only"),
        (Facts("Linux", "x86_64"), "MPS", "MPS is Apple silicon's GPU"),
        (Facts("Darwin", "x86_64"), "AUTO", "no build for Intel Macs"),
        (Facts("Darwin", "arm64"), "CUDA", "choose MPS"),
    ],
)
def test_a_build_the_machine_cannot_run_is_refused_saying_what_it_needs(facts, asked, words):
    with pytest.raises(BadInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        choose(facts, asked, V)


@pytest.mark.parametrize(
    "facts, torch, words",
    [
        (Facts("Linux", "x86_64", "590.44.01"), InstalledTorch(f"{V}+cu130", "13.0", gpu_seen=True), ""),
        (Facts("Linux", "x86_64"), InstalledTorch(f"{V}+cpu"), ""),
        (Facts("Darwin", "arm64"), InstalledTorch(V, gpu_seen=True), ""),
        (Facts("Linux", "x86_64", rocm="6.4.1"), InstalledTorch(f"{V}+rocm6.4", hip="6.4", gpu_seen=True), ""),
        (Facts("Linux", "x86_64"), InstalledTorch(f"{V}+cu130", "13.0"), "CUDA build (cu130) but no NVIDIA driver was found"),
        (
            Facts("Linux", "x86_64", "550.54.14"),
            InstalledTorch(f"{V}+cu130", "13.0"),
            "needs a newer NVIDIA driver than 550.54.14: Repair installs cu126",
        ),
        (Facts("Linux", "x86_64", "590.44.01"), InstalledTorch(f"{V}+cu130", "13.0"), "sees no NVIDIA GPU (driver 590.44.01)"),
        (
            Facts("Linux", "x86_64", "590.44.01"),
            InstalledTorch(f"{V}+cpu"),
            "CPU build on a machine with NVIDIA driver 590.44.01: Repair installs cu130",
        ),
        (
            Facts("Linux", "x86_64", rocm="6.4.1"),
            InstalledTorch(f"{V}+cpu"),
            "CPU build on a machine with ROCm 6.4.1: Repair installs rocm6.4",
        ),
        (Facts("Linux", "x86_64", rocm="6.4.1"), InstalledTorch(f"{V}+rocm6.4", hip="6.4"), "ROCm build (rocm6.4) but sees no AMD GPU"),
    ],
)
def test_check_engine_says_in_one_line_when_the_installed_torch_does_not_fit_the_machine(facts, torch, words):
    found = misfit(facts, torch)
    assert (words in found and "\n" not in found) if words else found == ""


def test_the_pin_is_the_engines_own():
    assert setup.torch_version() == V
    assert "torch==" not in setup.REQUIREMENTS.read_text(), "torch is pinned once, in requirements-models.txt"


def test_pips_own_lines_become_progress_notes_with_rate_and_time_left():
    now = [100.0]
    pip = PipProgress(clock=lambda: now[0])
    lines = [
        "Collecting torch==2.13.0+cpu",
        "  Downloading https://download.pytorch.org/whl/cpu/torch-2.13.0%2Bcpu-cp311-cp311-manylinux_2_28_x86_64.whl (183.2 MB)",
        "Progress 0 of 183200000",
    ]
    notes = [pip.feed(line) for line in lines]
    now[0] = 110.0
    notes.append(pip.feed("Progress 91600000 of 183200000"))
    notes.append(pip.feed("Installing collected packages: sympy, torch"))
    notes.append(pip.feed("Requirement already satisfied: numpy in ./lib/python3.11/site-packages"))
    assert notes == [
        "Collecting torch",
        "Downloading torch (183.2 MB)",
        "Downloading torch: 0.0 MB of 183.2 MB",
        "Downloading torch: 91.6 MB of 183.2 MB, 9.2 MB/s, 10 s left",
        "Installing 2 packages",
        "",
    ]
    pip.feed("ERROR: Could not find a version that satisfies the requirement torch==9.9 (from versions: none)")
    assert pip.errors == ["Could not find a version that satisfies the requirement torch==9.9 (from versions: none)"]


def quiet() -> Reporter:
    return Reporter(lambda p: None, CancelToken(), 1)


def test_a_folder_that_holds_something_else_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(BadInput, match="not a Diffusion 3D engine; choose an empty or new folder \\(nothing was deleted\\)"):
        setup.engine_setup(setup.EngineSetupRequest(folder=str(tmp_path), torch="CPU"), quiet())
    assert [p.name for p in tmp_path.iterdir()] == ["thesis.tex"]


def test_a_plan_says_the_build_its_reason_and_size_and_writes_nothing(tmp_path):
    result = setup.engine_setup(setup.EngineSetupRequest(folder=str(tmp_path / "engine"), torch="CPU", plan_only=True), quiet())
    assert result.requirement == f"torch=={V}+cpu" and result.reason and result.download_mb > 0
    assert not result.installed and not result.ready and not (tmp_path / "engine").exists()


def test_offline_or_without_the_disk_space_nothing_is_written(tmp_path, monkeypatch):
    request = setup.EngineSetupRequest(folder=str(tmp_path / "engine"), torch="CPU")
    with pytest.raises(BadInput, match="turn on Blender's online access"):
        setup.engine_setup(setup.EngineSetupRequest(folder=str(tmp_path / "engine"), torch="CPU", online=False), quiet())
    monkeypatch.setattr(setup, "_free_mb", lambda folder: 100)
    with pytest.raises(BadInput, match="needs about 1,400 MB on disk and .* has 100 MB free"):
        setup.engine_setup(request, quiet())
    assert not (tmp_path / "engine").exists()


def fake_python(tmp_path: Path, version: str) -> str:
    path = tmp_path / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version.replace('.', ' ')}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.skipif(os.name == "nt", reason="a shell script stands in for a Python")
def test_a_base_python_outside_3_11_to_3_13_is_refused_in_one_line(tmp_path):
    with pytest.raises(BadInput, match=r"is Python 3.9: the engine needs Python 3.11–3.13"):
        setup.base_python(fake_python(tmp_path, "3.9"))
    with pytest.raises(BadInput, match="not a Python that can make a virtual environment"):
        setup.base_python(str(tmp_path / "nothing"))
    assert setup.base_python(fake_python(tmp_path, "3.12")).endswith("python3.12")


def test_remove_deletes_only_an_engine_this_made(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    (ours / "bin").mkdir(parents=True)
    (ours / "bin" / "python").write_text("")
    (ours / setup.MARKER).write_text('{"engine": "diffusion3d", "ready": true}')
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    removed = setup.engine_setup(setup.EngineSetupRequest(folder=str(ours), remove=True, online=False), quiet())
    assert removed.removed and not ours.exists()
    with pytest.raises(BadInput, match="not a Diffusion 3D engine"):
        setup.engine_setup(setup.EngineSetupRequest(folder=str(theirs), remove=True), quiet())
    assert (theirs / "notes.txt").read_text() == "mine"
    assert not setup.engine_setup(setup.EngineSetupRequest(folder=str(tmp_path / "none"), remove=True), quiet()).removed


def test_check_engine_names_what_is_missing_beside_torch_and_the_environments_size(monkeypatch):
    from engine import info

    real = info._version
    monkeypatch.setattr(info, "_version", lambda name: "" if name in ("diffusers", "safetensors") else real(name))
    result = info.engine_info(info.InfoRequest(import_torch=True), Reporter(lambda p: None, CancelToken()))
    assert "diffusers, safetensors missing beside torch: Repair installs what is missing" in result.problems
    if sys.prefix != sys.base_prefix:  # the test environments are virtual environments
        assert result.environment_mb > 100 and "GB on disk" in result.summary()
