"""Which torch build fits this machine: a pure function from what was detected (system, architecture, the NVIDIA driver
nvidia-smi reports, ROCm) to the pin and the package index, with its reason in words, and the detection apart from it.

The table below is the one to update when the engine's torch pin moves (``requirements-models.txt`` here). CUDA builds
run on any driver at least as new as their CUDA major version's minimum (NVIDIA's minor version compatibility).
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput

PYTORCH_INDEX = "https://download.pytorch.org/whl/"


@dataclass(frozen=True)
class CudaBuild:
    tag: str  # the wheel's local version and index name, e.g. "cu130"
    linux_driver: tuple[int, ...]  # the oldest driver it runs on
    windows_driver: tuple[int, ...]


#: Newest first: the newest build the driver runs
CUDA_BUILDS = (
    CudaBuild("cu130", (580, 65, 6), (580, 88)),
    CudaBuild("cu126", (525, 60, 13), (528, 33)),
)
ROCM_BUILD = "rocm6.4"
ROCM_SIZE_MB, CUDA_SIZE_MB, CPU_SIZE_MB, MPS_SIZE_MB = 4600, 3300, 200, 80  # torch and what it pulls, downloaded
OTHERS_SIZE_MB = 150  # diffusers, transformers, numpy, OpenImageIO, scikit-image …


@dataclass(frozen=True)
class Facts:
    """What the choice depends on, detected (:func:`detect`) or given (the tests' table)."""

    system: str  # platform.system(): "Linux", "Windows", "Darwin"
    machine: str  # platform.machine(): "x86_64", "AMD64", "arm64", "aarch64"
    nvidia_driver: str = ""  # nvidia-smi's driver version; "" without one
    rocm: str = ""  # the ROCm version installed (Linux); "" without


@dataclass(frozen=True)
class TorchChoice:
    build: str  # a TORCH_BUILDS id (AUTO resolved)
    requirement: str  # e.g. "torch==2.13.0+cu130"
    index_url: str  # the extra package index holding it; "" for PyPI's own
    download_mb: int  # about how much the engine's packages download
    reason: str  # why, in one sentence


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def _shown(version: tuple[int, ...]) -> str:
    return ".".join(f"{part:02d}" if i == 2 else str(part) for i, part in enumerate(version))


def choose(facts: Facts, asked: str, torch_version: str) -> TorchChoice:
    """The build ``asked`` (a TORCH_BUILDS id; AUTO: the one that fits ``facts``) of ``torch_version``, or refused."""
    x86 = facts.machine.lower() in ("x86_64", "amd64")
    apple = facts.system == "Darwin"
    if apple and not facts.machine.lower().startswith("arm"):
        raise BadInput(f"torch {torch_version} has no build for Intel Macs (its last was 2.2): use a Mac with Apple silicon")
    build = asked
    if asked == "AUTO":
        if apple:
            build = "MPS"
        elif facts.nvidia_driver:
            build = "CUDA"
        elif facts.rocm and facts.system == "Linux":
            build = "ROCM"
        else:
            build = "CPU"
    if build == "MPS":
        if not apple:
            raise BadInput("MPS is Apple silicon's GPU: on this machine choose CPU, CUDA or ROCm")
        return TorchChoice(build, f"torch=={torch_version}", "", MPS_SIZE_MB + OTHERS_SIZE_MB, "Apple silicon: the macOS build, with MPS")
    if apple:
        raise BadInput(f"On a Mac torch runs on MPS or the CPU, both in the MPS build: choose MPS, not {build}")
    if build == "CUDA":
        return _cuda(facts, torch_version, x86)
    if build == "ROCM":
        if facts.system != "Linux" or not x86:
            raise BadInput("ROCm builds of torch are for Linux on x86-64 only: choose CPU")
        found = f" (ROCm {facts.rocm} found)" if facts.rocm else ""
        return TorchChoice(
            build,
            f"torch=={torch_version}+{ROCM_BUILD}",
            PYTORCH_INDEX + ROCM_BUILD,
            ROCM_SIZE_MB + OTHERS_SIZE_MB,
            f"AMD GPU on Linux{found}: {ROCM_BUILD}",
        )
    if not x86:  # Linux or Windows on ARM: PyPI's own build is the CPU one
        return TorchChoice("CPU", f"torch=={torch_version}", "", CPU_SIZE_MB + OTHERS_SIZE_MB, f"{facts.machine}: the CPU build")
    why = "no NVIDIA driver or ROCm found: the CPU build" if asked == "AUTO" else "the CPU build, as asked"
    return TorchChoice("CPU", f"torch=={torch_version}+cpu", PYTORCH_INDEX + "cpu", CPU_SIZE_MB + OTHERS_SIZE_MB, why)


def _cuda(facts: Facts, torch_version: str, x86: bool) -> TorchChoice:
    if not facts.nvidia_driver:
        raise BadInput("No NVIDIA driver found (nvidia-smi): install NVIDIA's driver first, or choose CPU")
    if not x86 and facts.system != "Linux":
        raise BadInput(f"torch has no CUDA build for {facts.system} on {facts.machine}: choose CPU")
    driver = _version(facts.nvidia_driver)
    windows = facts.system == "Windows"
    for cuda in CUDA_BUILDS:
        needed = cuda.windows_driver if windows else cuda.linux_driver
        if driver >= needed:
            return TorchChoice(
                "CUDA",
                f"torch=={torch_version}+{cuda.tag}",
                PYTORCH_INDEX + cuda.tag,
                CUDA_SIZE_MB + OTHERS_SIZE_MB,
                f"NVIDIA driver {facts.nvidia_driver}: the newest CUDA build it runs, {cuda.tag}",
            )
    oldest = CUDA_BUILDS[-1]
    oldest_driver = _shown(oldest.windows_driver if windows else oldest.linux_driver)
    raise BadInput(
        f"NVIDIA driver {facts.nvidia_driver} is too old for torch {torch_version}'s CUDA builds "
        f"(they need {oldest_driver} or newer): update the driver, or choose CPU"
    )


@dataclass(frozen=True)
class InstalledTorch:
    """What an environment's torch is: ``torch.__version__``, ``torch.version.cuda`` / ``.hip``, and whether it sees a GPU."""

    version: str  # e.g. "2.13.0+cu130"
    cuda: str = ""
    hip: str = ""
    gpu_seen: bool = False


def misfit(facts: Facts, torch: InstalledTorch) -> str:
    """What is wrong with an installed torch on this machine, in one line ("" when it fits): a GPU build without its
    driver or GPU, a CUDA build newer than the driver runs, or the CPU build where Set Up Engine would choose a GPU one."""
    try:
        fits = choose(facts, "AUTO", torch.version.split("+", 1)[0])
    except BadInput:
        fits = None  # nothing fits this machine (an Intel Mac, a driver too old): the check of devices says the rest
    tag = torch.version.partition("+")[2]
    if torch.cuda:
        if not facts.nvidia_driver:
            return f"torch is a CUDA build ({tag or torch.cuda}) but no NVIDIA driver was found: Repair installs the build for this machine"
        if fits is not None and fits.build == "CUDA" and not fits.requirement.endswith("+" + tag):
            wanted = fits.requirement.partition("+")[2]
            return f"torch's {tag} build needs a newer NVIDIA driver than {facts.nvidia_driver}: Repair installs {wanted}"
        if not torch.gpu_seen:
            return f"torch's CUDA build sees no NVIDIA GPU (driver {facts.nvidia_driver}): is the driver loaded?"
        return ""
    if torch.hip:
        return (
            ""
            if torch.gpu_seen
            else f"torch is a ROCm build ({tag or torch.hip}) but sees no AMD GPU: is ROCm installed and the GPU supported?"
        )
    if fits is not None and fits.build in ("CUDA", "ROCM"):
        gpu = f"NVIDIA driver {facts.nvidia_driver}" if fits.build == "CUDA" else f"ROCm {facts.rocm}"
        return f"torch is the CPU build on a machine with {gpu}: Repair installs {fits.requirement.partition('+')[2]}"
    return ""


def detect() -> Facts:
    """This machine's facts: its system and architecture, the NVIDIA driver (nvidia-smi), the ROCm version (Linux)."""
    driver = ""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            driver = out.stdout.strip().splitlines()[0].strip() if out.returncode == 0 and out.stdout.strip() else ""
        except (OSError, subprocess.SubprocessError):
            driver = ""
    rocm = ""
    info = Path("/opt/rocm/.info/version")
    if platform.system() == "Linux" and info.is_file():
        rocm = info.read_text(encoding="utf-8").strip()
    return Facts(platform.system(), platform.machine(), driver, rocm)
