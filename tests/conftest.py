"""Shared test set-up: engine and helper modules import by name."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# `import engine` works as it does for `python -m engine`; helper modules import by name.
for path in (ROOT, ROOT / "tests" / "engine", ROOT / "tests" / "blender"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

