"""Shared helpers for the benchmark scripts (not a benchmark itself).

Every script prints exactly one JSON object as the LAST line of stdout; Blender
may print render logs before it. Scripts that import bpy end with ``os._exit``
because bpy can hang at interpreter shutdown.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ADDON_NAME = "diffusion3d"


def cpu_model() -> str:
    """The CPU's model name (``platform.processor()`` is often empty on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine_info(bpy_module: Any = None) -> dict[str, Any]:
    import numpy as np

    info: dict[str, Any] = {
        "processor": platform.processor(),
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "system": platform.system(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    if bpy_module is not None:
        info["bpy"] = bpy_module.app.version_string
    if hasattr(os, "getloadavg"):
        info["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]  # other work on a shared machine skews figures
    return info


def command_line() -> str:
    """How this script was run (interpreter path relative to the repo where possible)."""
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join([str(exe), *sys.argv])


def summary(times: list[float]) -> dict[str, float]:
    """Median/min/max/mean of a list of seconds."""
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "mean_s": statistics.fmean(times),
    }


def emit(result: dict[str, Any]) -> None:
    """Print the result as one JSON line, last on stdout."""
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout.write(json.dumps(result, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def finish_bpy(result: dict[str, Any], code: int = 0) -> None:
    """Emit, then leave without running bpy's interpreter shutdown (it can hang)."""
    remove_addon_links()
    emit(result)
    os._exit(code)


_made_links: list[Path] = []


def remove_addon_links() -> None:
    """Remove the temp ``diffusion3d`` symlinks (the link only, never what it points to) and their dirs."""
    while _made_links:
        link = _made_links.pop()
        try:
            if link.is_symlink():
                link.unlink()
            link.parent.rmdir()
        except OSError:
            pass


def load_addon(link_dir: Path | None = None) -> Any:
    """Import bpy, reset to an empty factory scene and enable the add-on from this checkout.

    The repo folder may be called anything: a temp dir with a ``diffusion3d``
    symlink to the repo root goes first on ``sys.path``.
    """
    link_dir = Path(link_dir or tempfile.mkdtemp(prefix="d3d-bench-addon-"))
    link = link_dir / ADDON_NAME
    if not link.exists():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    _made_links.append(link)
    sys.path.insert(0, str(link_dir))

    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    import addon_utils

    module = addon_utils.enable(ADDON_NAME, default_set=True)
    if module is None:
        raise RuntimeError(f"Could not enable the add-on from {REPO_ROOT} (see the errors above)")
    return bpy


def run_main(main: Any, name: str) -> None:
    """Run ``main``; on failure still print a JSON line (with ``error``), and never hang in bpy's shutdown."""
    try:
        main()
    except SystemExit as exc:  # argparse --help / usage errors
        remove_addon_links()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 2)
    except BaseException as exc:
        import traceback

        traceback.print_exc()
        remove_addon_links()
        emit({"benchmark": name, "error": f"{type(exc).__name__}: {exc}"})
        os._exit(1)
    remove_addon_links()
    sys.stdout.flush()
    os._exit(0)
