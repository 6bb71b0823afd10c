"""What this Python can do: the "Check engine" report."""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import PROTOCOL_VERSION, __version__
from .install import torch_choice
from .progress import Reporter


@dataclass
class InfoRequest:
    import_torch: bool = True  # importing torch takes seconds; skip for a quick ping


@dataclass
class InfoResult:
    engine_version: str = __version__
    protocol: int = PROTOCOL_VERSION
    python: str = ""
    executable: str = ""
    platform: str = ""
    packages: dict[str, str] = field(default_factory=dict)  # name → version, "" when missing
    devices: list[str] = field(default_factory=list)  # usable torch devices, best first
    problems: list[str] = field(default_factory=list)
    environment_mb: int = 0  # the virtual environment's size on disk (0: not a virtual environment, or not measured)

    def summary(self) -> str:
        found = ", ".join(f"{k} {v}" for k, v in self.packages.items() if v) or "no ML packages"
        devices = ", ".join(self.devices) or "no torch device"
        size = f"; {self.environment_mb / 1024:.1f} GB on disk" if self.environment_mb else ""
        return f"Python {self.python}: {found}; devices: {devices}{size}"


OPTIONAL = ("numpy", "OpenImageIO", "torch", "diffusers", "transformers", "huggingface_hub", "safetensors", "accelerate", "PIL")
#: What model jobs import beside torch (an engine with torch but without one of these is broken).
FOR_MODELS = ("diffusers", "transformers", "huggingface_hub", "safetensors")


def _version(name: str) -> str:
    try:
        module = importlib.import_module(name)
    except Exception:  # a broken install reads as missing, never as a crash
        return ""
    return str(getattr(module, "__version__", None) or getattr(module, "VERSION_STRING", "installed"))


def engine_info(request: InfoRequest, report: Reporter) -> InfoResult:
    report.total = 2
    names = OPTIONAL if request.import_torch else ("numpy", "OpenImageIO")
    result = InfoResult(
        python=platform.python_version(),
        executable=sys.executable,
        platform=platform.platform(terse=True),
        packages={name: _version(name) for name in names},
    )
    report.step("Checking packages")
    if not result.packages.get("OpenImageIO"):
        result.problems.append("OpenImageIO is not installed: the engine reads and writes image files with it (pip install OpenImageIO)")
    if result.packages.get("torch"):
        missing = [name for name in FOR_MODELS if not result.packages.get(name)]
        if missing:
            result.problems.append(f"{', '.join(missing)} missing beside torch: Repair installs what is missing")
        result.devices = _torch_devices(result.problems)
    elif request.import_torch:
        result.problems.append("torch is not installed: model jobs need a Python with torch")
    if request.import_torch and sys.prefix != sys.base_prefix:  # a virtual environment (Set Up Engine's, or the user's)
        result.environment_mb = folder_mb(Path(sys.prefix))
    report.step("Checking devices")
    return result


def folder_mb(folder: Path) -> int:
    """A folder's files' size on disk, in MiB (links not followed)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) // 2**20


def _torch_devices(problems: list[str]) -> list[str]:
    import torch

    devices = []
    try:
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(i)
                devices.append(f"cuda:{i} {torch.cuda.get_device_name(i)} ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free)")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            devices.append("mps")
        installed = torch_choice.InstalledTorch(
            torch.__version__, torch.version.cuda or "", getattr(torch.version, "hip", None) or "", bool(devices)
        )
        misfit = torch_choice.misfit(torch_choice.detect(), installed)
        if misfit:
            problems.append(misfit)
    except Exception as exc:  # drivers can fail in many ways; report, don't crash
        problems.append(f"GPU check failed: {exc}")
    return devices + ["cpu"]
