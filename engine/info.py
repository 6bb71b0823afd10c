"""What this Python can do: the "Check engine" report."""

from __future__ import annotations

import importlib
import platform
import sys
from dataclasses import dataclass, field

from . import PROTOCOL_VERSION, __version__
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

    def summary(self) -> str:
        found = ", ".join(f"{k} {v}" for k, v in self.packages.items() if v) or "no ML packages"
        devices = ", ".join(self.devices) or "no torch device"
        return f"Python {self.python}: {found}; devices: {devices}"


OPTIONAL = ("numpy", "OpenImageIO", "torch", "diffusers", "transformers", "huggingface_hub", "safetensors", "accelerate", "PIL")


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
        result.devices = _torch_devices(result.problems)
    elif request.import_torch:
        result.problems.append("torch is not installed: model jobs need a Python with torch")
    report.step("Checking devices")
    return result


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
    except Exception as exc:  # drivers can fail in many ways; report, don't crash
        problems.append(f"GPU check failed: {exc}")
    return devices + ["cpu"]
