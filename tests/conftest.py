"""Shared test set-up: engine and helper modules import by name."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# `import engine` works as it does for `python -m engine`; helper modules import by name.
for path in (ROOT, ROOT / "tests", ROOT / "tests" / "engine", ROOT / "tests" / "blender"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# In a Blender environment the engine reads images with Blender's bundled OpenImageIO, as the add-on arranges
# (operators/machinery/compat.py); found here without importing bpy, so engine tests need nothing of Blender.
_bpy = importlib.util.find_spec("bpy")
if importlib.util.find_spec("OpenImageIO") is None and _bpy is not None and _bpy.origin:
    major, minor = sys.version_info[:2]
    sys.path += [str(p) for p in Path(_bpy.origin).parent.glob(f"*/python/lib/python{major}.{minor}/site-packages")]


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread, and the test machine's cores are shared."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Blender 4.5 as a module can hang at interpreter teardown once Blender's glTF exporter has run in the process among
    other jobs (seen in CI after every test passed and the summary was printed; batch.py ends with os._exit, so users'
    runs never reach that teardown). The session's report is complete here: end the process as pytest would have."""
    if "bpy" in sys.modules and sys.modules["bpy"].app.version < (5, 0, 0) and _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status[-1])
