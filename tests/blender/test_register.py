import subprocess
import sys
from pathlib import Path

import addon_utils
import bpy
from blender_helpers import snapshot

ROOT = Path(__file__).resolve().parents[2]


def test_register_unregister_register(addon):
    assert hasattr(bpy.ops.diffusion3d, "capture_panorama") and hasattr(bpy.types.Scene, "diffusion3d")
    addon_utils.disable("diffusion3d", default_set=True)
    assert not hasattr(bpy.types.Scene, "diffusion3d")
    assert "DIFFUSION3D_PT_world" not in dir(bpy.types)
    addon_utils.enable("diffusion3d", default_set=True, handle_error=lambda exc: (_ for _ in ()).throw(exc))
    assert hasattr(bpy.types.Scene, "diffusion3d")
    for name in (
        "capture_panorama",
        "build_world_sphere",
        "generate_panorama",
        "find_models",
        "random_seed",
        "check_engine",
        "release_engine",
        "cancel_job",
    ):
        getattr(bpy.ops.diffusion3d, name).get_rna_type()
    assert "DIFFUSION3D_PT_world" in dir(bpy.types) and "DIFFUSION3D_PT_engine" in dir(bpy.types)


def test_registering_imports_nothing_heavy():
    """In a fresh process: other tests in this one import torch on purpose."""
    check = (
        "import bpy, sys, batch; before = set(sys.modules); batch.load_addon(); "  # Blender 5 itself imports requests
        "heavy = {'torch', 'diffusers', 'transformers', 'huggingface_hub', 'requests'} & (set(sys.modules) - before); "
        "print(sorted(heavy)); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"register() imported ML or network packages: {done.stdout.strip()}"


def test_preferences_defaults_are_safe(prefs):
    assert prefs.allow_downloads is False
    assert prefs.allow_pickle is False
    assert prefs.engine_mode == "IN_PROCESS"
    assert prefs.device == "AUTO"


def test_check_engine_reports_this_python(addon):
    before = snapshot()
    assert bpy.ops.diffusion3d.check_engine() == {"FINISHED"}
    assert "Python" in addon.operators.engine_ops.last_check.text
    assert snapshot() == before


def test_release_engine_stops_a_worker(addon, prefs):
    prefs.engine_mode = "SUBPROCESS"
    bpy.ops.diffusion3d.check_engine()
    client = addon.operators.machinery.session.client()
    assert "running" in client.status()
    assert bpy.ops.diffusion3d.release_engine() == {"FINISHED"}
    assert "stopped" in client.status()
