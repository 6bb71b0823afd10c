"""Set Up Engine in Blender: the plan first, a refusal without online access, and the engine selected only once it is
ready (the install itself: tests/test_engine_setup.py, through batch.py engine-setup)."""

from __future__ import annotations

from types import SimpleNamespace

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


FAKE_PIP = """
import sys, time
print("Collecting torch==2.13.0+cpu", flush=True)
print("  Downloading torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl (183.2 MB)", flush=True)
for done in range(0, 183_200_001, 18_320_000):
    print(f"Progress {done} of 183200000", flush=True)
    time.sleep(float(sys.argv[1]))
print("Successfully installed torch-2.13.0+cpu", flush=True)
"""


@pytest.fixture
def clicked_setup(addon, prefs, monkeypatch, tmp_path):
    """Set Up Engine as clicked in a window, over an unfinished engine (its marker written, not ready): pip is a script
    that prints pip's own raw progress lines (``pause`` seconds apart), the check passes; the rest is the add-on's."""
    import sys

    setup = sys.modules[addon.__name__ + ".engine.install.setup"]  # the add-on's engine, which the job runs
    folder = tmp_path / "engine"
    python = setup.environment_python(folder)
    python.parent.mkdir(parents=True)
    python.write_text("")
    (folder / setup.MARKER).write_text('{"engine": "diffusion3d", "ready": false}\n')
    script = tmp_path / "pip.py"
    script.write_text(FAKE_PIP)
    real_popen = setup.subprocess.Popen
    pause = {"seconds": 0.01}

    def popen(command, *args, **how):  # pip only: the rest (the base Python's check) is real
        if list(command[1:3]) == ["-m", "pip"]:
            command = [sys.executable, str(script), str(pause["seconds"])]
        return real_popen(command, *args, **how)

    monkeypatch.setattr(setup.subprocess, "Popen", popen)
    monkeypatch.setattr(setup, "check_environment", lambda python, choice: ("Python 3.11: torch 2.13.0+cpu; devices: cpu", []))
    windowed = wd.windowed(addon, monkeypatch)
    windowed.app.online_access = True
    prefs.engine_mode, prefs.python_path = "IN_PROCESS", ""
    op = wd.stand_in(addon.operators.engine_ops.DIFFUSION3D_OT_setup_engine, folder=str(folder), torch="CPU")
    return SimpleNamespace(op=op, context=wd.Context(), folder=folder, python=python, setup=setup, pause=pause)


def confirm_and_follow(clicked, event_at):
    """The click asks first (the plan, before anything is fetched); confirmed, the install runs modal to its end."""
    op, context = clicked.op, clicked.context
    assert op.invoke(context, wd.MOUSE) == {"INTERFACE"}
    [asked] = context.window_manager.confirmations
    assert "torch==2.13.0+cpu" in asked["message"] and "MB to download" in asked["message"]
    assert not clicked.setup.read_marker(clicked.folder)["ready"], "nothing runs before the answer"
    return wd.run(op, context, event_at, start=lambda: op.execute(context))  # confirmed


def test_clicked_set_up_engine_asks_then_installs_with_progress_and_selects_the_engine_it_checked(addon, prefs, clicked_setup):
    assert confirm_and_follow(clicked_setup, lambda step: wd.TIMER) == {"FINISHED"}, clicked_setup.op.reports
    assert (prefs.engine_mode, prefs.python_path) == ("SUBPROCESS", str(clicked_setup.python))
    assert clicked_setup.setup.read_marker(clicked_setup.folder)["ready"]
    progress = clicked_setup.context.window_manager.progress
    assert progress and progress == sorted(progress) and max(progress) <= 1000
    wd.assert_closed(addon, clicked_setup.context)


def test_esc_during_a_clicked_install_stops_pip_and_leaves_the_previous_engine_selected(addon, prefs, clicked_setup):
    clicked_setup.pause["seconds"] = 0.5  # pip takes its time
    assert confirm_and_follow(clicked_setup, lambda step: wd.ESC if step == 20 else wd.TIMER) == {"CANCELLED"}
    assert (prefs.engine_mode, prefs.python_path) == ("IN_PROCESS", "")
    assert not clicked_setup.setup.read_marker(clicked_setup.folder)["ready"], "the unfinished engine stays unfinished"
    assert any("cancelled" in message for _, message in clicked_setup.op.reports)
    wd.assert_closed(addon, clicked_setup.context)
