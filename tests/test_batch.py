"""batch.py as users run it: a separate process, one JSON line last, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


def batch(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "batch.py"), *args], capture_output=True, text=True, timeout=timeout)


def summary(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_lists_the_subcommands():
    proc = batch("--help")
    assert proc.returncode == 0
    for name in ("capture", "sphere", "demo"):
        assert name in proc.stdout


def test_demo_capture_and_sphere_end_to_end(tmp_path):
    demo = summary(batch("demo", "--out", str(tmp_path / "demo"), "--width", "128", "--samples", "1", "--step", "2"))
    assert demo["command"] == "demo"
    for key in ("blend", "preview_center", "preview_offcenter"):
        assert Path(demo["paths"][key]).stat().st_size > 0
    assert sorted(p.name for p in Path(demo["paths"]["capture"]).iterdir()) == ["depth.exr", "depth16.png", "meta.json", "rgb.png"]
    assert demo["sphere"]["vertices"] == 32 * 64 + 2 and set(demo["timings_s"]) >= {"capture", "sphere"}

    # The same capture through the other subcommands, from the saved world.blend.
    cap = summary(batch("capture", "--blend", demo["paths"]["blend"], "--out", str(tmp_path / "cap"), "--width", "64", "--samples", "1", "--from", "0,0,0"))
    assert Path(cap["paths"]["depth.exr"]).is_file()
    sph = summary(
        batch("sphere", "--rgb", cap["paths"]["rgb.png"], "--depth", cap["paths"]["depth.exr"], "--step", "1", "--save", str(tmp_path / "s.blend"))
    )
    assert sph["vertices"] == 32 * 64 + 2 and Path(sph["paths"]["blend"]).is_file()

    again = batch("demo", "--out", str(tmp_path / "demo"), "--width", "128", "--samples", "1")
    assert again.returncode == 1 and "already holds" in again.stderr and "--overwrite" in again.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (("sphere", "--rgb", "missing.png", "--depth", "missing.exr"), "not found"),
        (("capture", "--out", "x", "--blend", "missing.blend"), "No such .blend"),
    ],
)
def test_errors_exit_non_zero_with_one_line(tmp_path, args, words):
    proc = batch(*args)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and words in lines[0], proc.stderr[-1000:]
