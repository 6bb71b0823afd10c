"""Shared test set-up: the repository root is importable as the add-on's folder."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `import engine` works as it does for `python -m engine`
