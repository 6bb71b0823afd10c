"""Model jobs in tests on every Blender line: a Python with torch, and tiny models built by it."""

import atexit
import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The engine's own Python for model jobs, as batch.py reads it (the Blender 5.2 environment has no torch).
ENGINE_PYTHON = "DIFFUSION3D_ENGINE_PYTHON"


def batch(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python batch.py ARGS`` in this test's Python, its output captured."""
    return subprocess.run([sys.executable, str(ROOT / "batch.py"), *args], capture_output=True, text=True, timeout=timeout)


def models_here() -> bool:
    """Whether this Python can run model jobs itself (torch and diffusers)."""
    return all(importlib.util.find_spec(name) is not None for name in ("torch", "diffusers"))


def engine_python() -> str:
    """The Python that runs model jobs: this one when it has torch, else $DIFFUSION3D_ENGINE_PYTHON; skip without either."""
    if models_here():
        return sys.executable
    python = os.environ.get(ENGINE_PYTHON, "")
    if not python:
        pytest.skip(f"model jobs need torch in this Python or {ENGINE_PYTHON} (the engine environment)")
    return python


class _Built:
    """Tiny models built once per test session, each in its own folder, copied to where a test wants one (they are
    small; a copy is the test's own, to damage as it likes). Building one costs a torch import on Blender 5.2's line."""

    def __init__(self) -> None:
        self.root: Path | None = None

    def folder(self, builder: str, options: dict[str, Any]) -> Path:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="diffusion3d-tiny-models-"))
            atexit.register(shutil.rmtree, self.root, True)
        key = hashlib.sha256(json.dumps([builder, options], sort_keys=True).encode()).hexdigest()[:16]
        return self.root / key

    def copy(self, builder: str, options: dict[str, Any], folder: Path) -> Path:
        shutil.copytree(self.folder(builder, options), folder, dirs_exist_ok=True)
        return Path(folder)


_built = _Built()


def build_tiny(builder: str, folder: Path, **options: Any) -> Path:
    """A tiny random-weight model from ``tests/engine/tiny_*.py`` (``"module:function"``), built here or by the engine's Python."""
    return build_tinies((builder, folder, options))[0]


def build_tinies(*models: tuple[str, Path, dict[str, Any]]) -> list[Path]:
    """Several tiny models (``(builder, folder, options)`` each), built in one process: one torch import, not one per model."""
    missing = [(b, _built.folder(b, o), o) for b, _, o in models if not _built.folder(b, o).is_dir()]
    if missing:
        _build(missing)
    return [_built.copy(builder, options, folder) for builder, folder, options in models]


def _build(models: list[tuple[str, Path, dict[str, Any]]]) -> None:
    if models_here():
        for builder, folder, options in models:
            module, function = builder.split(":")
            getattr(importlib.import_module(module), function)(Path(folder), **options)
        return
    plan = [[builder, str(folder), options] for builder, folder, options in models]
    script = (
        f"import importlib, json, sys; from pathlib import Path; sys.path.insert(0, {str(ROOT / 'tests' / 'engine')!r})\n"
        "for builder, folder, options in json.loads(sys.argv[1]):\n"
        "    module, function = builder.split(':')\n"
        "    getattr(importlib.import_module(module), function)(Path(folder), **options)\n"
    )
    subprocess.run([engine_python(), "-c", script, json.dumps(plan)], check=True, capture_output=True, timeout=600)


@contextlib.contextmanager
def cpu_load(processes: int = 2) -> Iterator[None]:
    """Busy loops beside the test, as a loaded node runs a render: what we write must not depend on it."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_metadata(path: Path) -> dict[str, str]:
    """Metadata in an image file (every part of an EXR, PNG text) that says when, where or how long: dates, times, paths."""
    import OpenImageIO as oiio

    image = oiio.ImageInput.open(str(path))
    found, part = {}, 0
    while image.seek_subimage(part, 0):
        for attribute in image.spec().extra_attribs:
            value = str(attribute.value)
            if any(word in attribute.name.lower() for word in ("date", "time", "file", "host", "memory")) or "/" in value:
                found[f"{part}/{attribute.name}"] = value
        part += 1
    image.close()
    return found


_USD_READER = """
import json, sys
from pxr import Usd, UsdGeom, UsdShade
stage = Usd.Stage.Open(sys.argv[1])
prims = list(stage.Traverse())
shaders = [UsdShade.Shader(p) for p in prims if p.IsA(UsdShade.Shader)]
print(json.dumps({
    "mesh_points": [len(UsdGeom.Mesh(p).GetPointsAttr().Get()) for p in prims if p.IsA(UsdGeom.Mesh)],
    "textures": [str(s.GetInput("file").Get().path) for s in shaders if s.GetIdAttr().Get() == "UsdUVTexture"],
    "cameras": sum(p.IsA(UsdGeom.Camera) for p in prims),
    "animated": stage.GetEndTimeCode() > stage.GetStartTimeCode(),
}))
"""


def read_usd(path: Path) -> dict[str, Any]:
    """What usd-core's ``pxr`` reads of a USD file: in a process of its own, for ``pxr`` and ``bpy``'s own USD cannot share
    one (Blender 4.5 as a module then hangs at exit)."""
    proc = subprocess.run([sys.executable, "-c", _USD_READER, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)
