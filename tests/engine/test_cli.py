import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def engine(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_help_from_the_addon_folder():
    proc = engine("--help")
    assert proc.returncode == 0 and "info" in proc.stdout and "worker" in proc.stdout


def test_info_prints_json():
    proc = engine("info", "--no-torch")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["packages"]["numpy"] and info["protocol"] >= 1


def test_depth_info_reads_an_exr_whatever_its_compression(tmp_path):
    import numpy as np

    from engine.imagefiles import write_exr

    depth = np.linspace(1.0, 9.0, 32 * 64, dtype=np.float32).reshape(32, 64)
    for codec in ("piz", "dwaa"):
        write_exr(tmp_path / f"{codec}.exr", {"Z": depth}, compression=codec)
        proc = engine("depth-info", str(tmp_path / f"{codec}.exr"))
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert (info["width"], info["height"], info["stored"], info["auto_mode"]) == (64, 32, "float EXR", "METRIC")
        assert abs(info["min"] - 1.0) < 0.01 and abs(info["max"] - 9.0) < 0.05
    proc = engine("depth-info", str(tmp_path / "missing.exr"))
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "not found" in proc.stderr


def test_engine_never_imports_bpy_or_the_addon():
    for path in (ROOT / "engine").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import bpy" not in text and "from bpy" not in text, path
        depth = len(path.relative_to(ROOT / "engine").parts)  # engine/x.py: 1, engine/diffusion/x.py: 2
        for dots in re.findall(r"^\s*from (\.+)", text, flags=re.M):
            assert len(dots) <= depth, f"{path} reaches outside the engine package"
