"""Shared test set-up: engine and helper modules import by name."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# `import engine` works as it does for `python -m engine`; helper modules import by name.
for path in (ROOT, ROOT / "tests" / "engine", ROOT / "tests" / "blender"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture
def one_torch_thread():
    """Tiny models run faster on one thread, and the test machine's cores are shared."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
