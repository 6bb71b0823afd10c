"""Shared test set-up: engine and helper modules import by name."""

import importlib.util
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
