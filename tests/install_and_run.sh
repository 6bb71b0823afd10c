#!/usr/bin/env bash
# The README's test command: install what the tests need, type-check, run pytest.
#   .venv        Python 3.11 with the real Blender module (bpy 4.5 LTS) and pytest
#   .venv-types  mypy with fake-bpy-module (it installs a "bpy" too, so it lives apart);
#                its stubs use Python 3.12 syntax, so that environment needs Python >= 3.12
set -euo pipefail
cd "$(dirname "$0")/.."

python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
.venv/bin/pip install -q -r requirements-dev.txt

types_python=""
for candidate in python3.13 python3.12 "$(pyenv root 2>/dev/null)"/versions/3.1[2-9]*/bin/python3; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    types_python="$candidate"
    break
  fi
done
if [ -z "$types_python" ]; then
  echo "error: type checking needs a Python >= 3.12 (fake-bpy-module's stubs); none found" >&2
  exit 2
fi
"$types_python" -m venv .venv-types
.venv-types/bin/pip install -q -r requirements-types.txt
.venv-types/bin/mypy

.venv/bin/python -m pytest "$@"
