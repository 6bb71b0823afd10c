"""Set Up Engine in Blender: the plan first, a refusal without online access, and the engine selected only once it is
ready (the install itself: tests/test_engine_setup.py, through batch.py engine-setup)."""

from __future__ import annotations

import bpy
import pytest
import window_driver as wd


def test_a_plan_reports_the_build_and_size_and_changes_nothing(prefs, tmp_path):
    before = (prefs.engine_mode, prefs.python_path)
    assert bpy.ops.diffusion3d.setup_engine(folder=str(tmp_path / "engine"), torch="CPU", plan_only=True) == {"FINISHED"}
    assert not (tmp_path / "engine").exists() and (prefs.engine_mode, prefs.python_path) == before


def test_without_online_access_it_is_refused_in_one_line_and_writes_nothing(prefs, tmp_path):
    assert not bpy.app.online_access  # Blender as a module, as in background mode by default
    with pytest.raises(RuntimeError, match="turn on Blender's online access") as refused:
        bpy.ops.diffusion3d.setup_engine(folder=str(tmp_path / "engine"), torch="CPU")
    assert str(refused.value).strip().count("\n") == 0 and not (tmp_path / "engine").exists()


def test_only_a_ready_engine_is_selected_and_the_previous_one_stays_otherwise(addon, prefs, tmp_path):
    from engine.install.setup import EngineSetupResult

    prefs.engine_mode, prefs.python_path = "IN_PROCESS", ""
    op = wd.stand_in(addon.operators.engine_ops.DIFFUSION3D_OT_setup_engine, folder=str(tmp_path))
    planned = EngineSetupResult(folder=str(tmp_path), python=str(tmp_path / "bin" / "python"), requirement="torch==2.13.0+cpu")
    op.finish(bpy.context, planned)
    assert (prefs.engine_mode, prefs.python_path) == ("IN_PROCESS", "")
    ready = EngineSetupResult(
        folder=str(tmp_path), python=str(tmp_path / "bin" / "python"), installed=True, ready=True, check="Python 3.11"
    )
    op.finish(bpy.context, ready)
    assert (prefs.engine_mode, prefs.python_path) == ("SUBPROCESS", str(tmp_path / "bin" / "python"))


def test_removing_the_engine_in_use_goes_back_to_blenders_python(addon, prefs, tmp_path):
    from engine.install.setup import EngineSetupResult

    prefs.engine_mode, prefs.python_path = "SUBPROCESS", str(tmp_path / "engine" / "bin" / "python")
    op = wd.stand_in(addon.operators.engine_ops.DIFFUSION3D_OT_setup_engine, folder=str(tmp_path / "other"), remove=True)
    op.finish(bpy.context, EngineSetupResult(folder=str(tmp_path / "other"), removed=True))
    assert prefs.engine_mode == "SUBPROCESS", "another engine's removal leaves the one in use"
    op.finish(bpy.context, EngineSetupResult(folder=str(tmp_path / "engine"), removed=True))
    assert (prefs.engine_mode, prefs.python_path) == ("IN_PROCESS", "")
