"""pytest set-up for the whole checkout (a dev file, excluded from the extension build)."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
# `import engine` works as it does for `python -m engine`; helper modules import by name.
for path in (ROOT, ROOT / "tests" / "engine", ROOT / "tests" / "blender"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def pytest_collect_directory(path, parent):
    """Collect the add-on root as a plain folder, not a package: its ``__init__.py``
    is Blender's entry point and only imports as part of the add-on package."""
    if path == ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
