#!/usr/bin/env bash
# The README's test command: one environment per Blender LTS line and one for the engine; format and
# lint, type checks against both Blender APIs, then the tests: the engine's once (without bpy),
# Blender's on each line.
#
#   .venv               Blender 4.5 LTS as a module (Python 3.11), the model packages, test tools
#                       (both Pythons with torch also get requirements-test-nodeps.txt: CLIP's BPE for the tiny models)
#   .venv-blender-5.2   Blender 5.2 LTS as a module (Python 3.13), test tools; no torch: model jobs run
#                       in the subprocess engine with .venv-engine's Python, as users run them
#   .venv-engine        the engine's own Python (3.11): numpy, OpenImageIO, torch, diffusers, Ray; no bpy
#   .venv-types-4.5/5.2 mypy with fake-bpy-module for each line (it installs a "bpy" too, so apart)
#
# Extra arguments go to every pytest run (e.g. -k world_sphere).
set -euo pipefail
cd "$(dirname "$0")/.."

python_of() {  # python_of 3.13: an interpreter of that version, from PATH or pyenv
  local candidate
  for candidate in "python$1" "$(pyenv root 2>/dev/null)"/versions/"$1"*/bin/python"$1"; do
    if "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$1'.split('.'))))" 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
  echo "error: the tests need Python $1 (for Blender $2); none found" >&2
  exit 2
}

logs=$(mktemp -d)
install() {  # install VENV PYTHON REQUIREMENTS...: quietly (run in the background); the log is shown if it fails
  local venv=$1 python=$2 requirements=() nodeps=()  # a *-nodeps.txt file goes in afterwards, without its dependencies
  shift 2
  for file in "$@"; do
    case $file in *-nodeps.txt) nodeps+=(-r "$file") ;; *) requirements+=(-r "$file") ;; esac
  done
  local pip=("$venv/bin/pip" install -q --disable-pip-version-check)
  { "$python" -m venv "$venv" && "${pip[@]}" "${requirements[@]}" && { [ ${#nodeps[@]} -eq 0 ] || "${pip[@]}" --no-deps "${nodeps[@]}"; }; } \
    >"$logs/$venv.log" 2>&1 || { echo "error: installing $* into $venv failed:" >&2; tail -40 "$logs/$venv.log" >&2; return 1; }
}

py311=$(python_of 3.11 "4.5 and the engine")
py313=$(python_of 3.13 "5.2")
py312=$(python_of 3.12 "4.5's type stubs (Python 3.12 syntax, numpy 1.26)")
start=$SECONDS
pids=()
install .venv "$py311" requirements-blender-4.5.txt requirements-models.txt requirements-test.txt requirements-test-nodeps.txt & pids+=($!)
install .venv-engine "$py311" requirements-engine.txt requirements-test.txt requirements-ray.txt requirements-test-nodeps.txt & pids+=($!)
install .venv-blender-5.2 "$py313" requirements-blender-5.2.txt requirements-test.txt requirements-hull.txt & pids+=($!)
install .venv-types-4.5 "$py312" requirements-types-4.5.txt & pids+=($!)
install .venv-types-5.2 "$py313" requirements-types-5.2.txt & pids+=($!)
for pid in "${pids[@]}"; do wait "$pid"; done
echo "environments ready in $((SECONDS - start)) s"

# Two lanes side by side (a 2-core machine keeps both busy: most tests wait on a subprocess, a render or an
# import), then what measures wall-clock seconds alone: the "timed" tests and the Ray cluster.
# Each stage's lines go to its log, shown whole when the stage ends; a failed stage is noted and the rest run.
stage() {  # stage NAME COMMAND...: pytest's exit 5 (the extra arguments selected none of its tests) is no failure
  local name=$1 begin=$SECONDS rc=0 log
  shift
  log=$(mktemp "$logs/stage.XXXXXX")
  "$@" >"$log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || echo "$name" >>"$logs/failed"
  { echo "== $name"; cat "$log"; echo "== $name: $((SECONDS - begin)) s"; } >"$log.shown"
  if command -v flock >/dev/null; then flock "$logs/failed" cat "$log.shown"; else cat "$log.shown"; fi  # one block at a time
}
: >"$logs/failed"
blender_tests=(tests/blender tests/test_batch.py tests/test_batch_runs.py tests/test_engine_setup.py tests/test_extension_package.py)
on_45=(.venv/bin/python -m pytest "${blender_tests[@]}")
on_52=(env DIFFUSION3D_ENGINE_PYTHON="$PWD/.venv-engine/bin/python" .venv-blender-5.2/bin/python -m pytest "${blender_tests[@]}")
engine=(.venv-engine/bin/python -m pytest tests/engine)
stage "Blender 5.2 LTS (model jobs in the engine's Python)" "${on_52[@]}" -m "not timed" "$@" &
other_lane=$!
stage "format and lint (ruff)" sh -c '.venv-engine/bin/ruff format --check --quiet . && .venv-engine/bin/ruff check --quiet .'
stage "mypy against Blender 4.5's API" .venv-types-4.5/bin/mypy
stage "mypy against Blender 5.2's API" .venv-types-5.2/bin/mypy
stage "the engine, without bpy" "${engine[@]}" -m "not timed" "$@"
stage "Blender 4.5 LTS" "${on_45[@]}" -m "not timed" "$@"
wait "$other_lane"
stage "timed: the engine" "${engine[@]}" -m timed "$@"
stage "timed: Blender 4.5 LTS" "${on_45[@]}" -m timed "$@"
stage "timed: Blender 5.2 LTS" "${on_52[@]}" -m timed "$@"
stage "Ray: a two-node cluster on this machine (tasks in Blender 4.5's Python)" \
  env DIFFUSION3D_TASK_PYTHON="$PWD/.venv/bin/python" .venv-engine/bin/python -m pytest tests/test_ray.py "$@"
echo "all done in $((SECONDS - start)) s"
if [ -s "$logs/failed" ]; then
  sed 's/^/failed: /' "$logs/failed" >&2
  exit 1
fi
