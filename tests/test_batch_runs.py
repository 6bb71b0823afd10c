"""batch.py as people run it from a terminal: Ctrl-C or SIGTERM stops any job within two seconds, removing what it had
started writing; the console shows our progress lines, not Blender's render log."""

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import batch, build_tiny

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.timeout(300), pytest.mark.timed]
STOPS_WITHIN = 2.0  # seconds, as promised
SLACK = 0.5  # a loaded test machine's scheduling


class Run:
    """``batch.py`` started in the background with its own temporary folder (the job's scratch folders land there)."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.tmp = tmp_path / "tmp"
        self.tmp.mkdir(exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmp)}
        command = [sys.executable, str(ROOT / "batch.py"), *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float = 120) -> None:
        """Read progress lines until one holds ``text``."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            assert line, f"ended before {text!r}: {self.proc.stderr.read()[-2000:] if self.proc.stderr else ''}"
            self.lines.append(line.rstrip("\n"))
            if text in line:
                return
        raise AssertionError(f"no line with {text!r} in {timeout} s")

    def stop(self, sig: signal.Signals) -> tuple[float, str]:
        """Send ``sig``; how long the process took to end, and its stderr."""
        begin = time.monotonic()
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        seconds = time.monotonic() - begin
        self.lines += out.splitlines()
        return seconds, err

    def leftovers(self) -> list[str]:
        """Our scratch folders and Blender's session folder left behind (not torch's caches)."""
        return sorted(p.name for p in self.tmp.iterdir() if p.name.startswith(("diffusion3d-", "blender_")))


def assert_stopped(run: Run, seconds: float, err: str, sig: signal.Signals, command: str) -> None:
    assert run.proc.returncode == 130, err[-2000:]
    assert seconds < STOPS_WITHIN + SLACK, f"took {seconds:.2f} s"
    assert err.strip().splitlines() == [f"interrupted ({sig.name}): batch.py {command} stopped; nothing written"], err[-2000:]
    assert run.leftovers() == []


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> Path:
    """The startup scene without adaptive sampling: every sample is rendered, so a render lasts as long as its samples."""
    path = tmp_path_factory.mktemp("scene") / "slow.blend"
    script = f"import bpy; bpy.context.scene.cycles.use_adaptive_sampling = False; bpy.ops.wm.save_as_mainfile(filepath={str(path)!r})"
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=120)
    return path


def test_ctrl_c_stops_a_long_render_within_two_seconds_leaving_nothing_and_the_next_run_works(tmp_path, slow_scene):
    out = tmp_path / "capture"
    run = Run(tmp_path, "capture", "--blend", str(slow_scene), "--out", str(out), "--width", "256", "--samples", "65536")
    run.wait_for("Rendering panorama: 0/1")  # printed as the render starts
    time.sleep(1.0)  # inside Blender's render, which no Python code interrupts
    seconds, err = run.stop(signal.SIGINT)
    assert_stopped(run, seconds, err, signal.SIGINT, "capture")
    assert not out.exists()
    again = batch("capture", "--out", str(out), "--width", "64", "--samples", "1")
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["depth.exr", "depth16.png", "meta.json", "rgb.png"]


def test_sigterm_stops_a_set_of_renders_at_the_next_view_and_removes_the_set(tmp_path):
    out = tmp_path / "views"
    run = Run(tmp_path, "viewneti-data", "--out", str(out), "--views", "400", "--size", "32", "32", "--samples", "1")
    run.wait_for("Rendering")
    seconds, err = run.stop(signal.SIGTERM)
    assert_stopped(run, seconds, err, signal.SIGTERM, "viewneti-data")
    assert not out.exists()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A small world sphere saved in a .blend, from a made-up RGB panorama and its depth."""
    import cv2
    import numpy as np

    folder = tmp_path_factory.mktemp("world")
    cv2.imwrite(str(folder / "pano.png"), np.tile(np.linspace(0, 255, 64).astype(np.uint8), (32, 1)))
    cv2.imwrite(str(folder / "depth.png"), np.full((32, 64), 128, np.uint8))
    made = batch("sphere", "--rgb", str(folder / "pano.png"), "--depth", str(folder / "depth.png"), "--save", str(folder / "w.blend"))
    assert made.returncode == 0, made.stderr[-2000:]
    return folder / "w.blend"


def test_ctrl_c_stops_a_stereo_video_between_frames_leaving_no_frames_and_no_video(tmp_path, world):
    out = tmp_path / "walk.mp4"
    run = Run(tmp_path, "stereo-video", "--blend", str(world), "--out", str(out), "--seconds", "60", "--resolution", "32")
    run.wait_for("Rendering stereo video")
    seconds, err = run.stop(signal.SIGINT)
    assert_stopped(run, seconds, err, signal.SIGINT, "stereo-video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # neither the video nor its frames folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_tiny("tiny_ldm3d:build_tiny_ldm3d", tmp_path_factory.mktemp("models") / "tiny-pano", vae_channels=4)


def test_ctrl_c_stops_a_model_job_in_process_or_in_the_worker_and_the_same_command_then_runs(tmp_path, tiny_model):
    """Blender 4.5 runs the model in its own Python, 5.2 in the engine's worker process (ended with the job)."""
    out = tmp_path / "pano"
    args = ("panorama", "--models-dir", str(tiny_model.parent), "--model", "tiny-pano", "--width", "64", "--out", str(out))
    run = Run(tmp_path, *args, "--steps", "1000")
    run.wait_for("Generating")
    seconds, err = run.stop(signal.SIGINT)
    assert_stopped(run, seconds, err, signal.SIGINT, "panorama")
    assert not out.exists()
    workers = subprocess.run(["pgrep", "-f", f"engine worker --scratch {run.tmp}"], capture_output=True, text=True)
    assert workers.stdout == ""
    again = batch(*args, "--steps", "2")
    assert again.returncode == 0, again.stderr[-2000:]


def test_a_render_shows_our_progress_lines_and_the_json_summary_last_never_blenders_log(tmp_path):
    proc = batch("capture", "--out", str(tmp_path / "a"), "--width", "64", "--samples", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    *progress, last = proc.stdout.strip().splitlines()
    assert json.loads(last)["command"] == "capture"
    assert progress[0] == "[diffusion3d] Rendering panorama: 0/1"  # from its first second
    assert all(line.startswith(("[diffusion3d] ", "Info: ")) for line in progress), progress  # and the operator's own report
    assert "Fra:" not in proc.stdout + proc.stderr and "Synchronizing" not in proc.stdout + proc.stderr


@pytest.mark.skipif(importlib.metadata.version("bpy") >= "5", reason="Blender 5.2 as a module prints no render statistics")
def test_verbose_shows_blenders_log_too(tmp_path):
    proc = batch("capture", "--out", str(tmp_path / "a"), "--width", "64", "--samples", "16", "--verbose")
    assert proc.returncode == 0 and "Fra:" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1])["command"] == "capture"


def test_the_engine_command_line_reads_image_files_in_blenders_environment(tmp_path):
    """``python -m engine depth-info`` (README) in an environment with only bpy: the OpenImageIO bpy bundles, without bpy."""
    import cv2
    import numpy as np

    path = tmp_path / "depth16.png"
    cv2.imwrite(str(path), np.tile(np.arange(0, 65536, 1024, dtype=np.uint16), (32, 1)))
    proc = subprocess.run([sys.executable, "-m", "engine", "depth-info", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout)
    assert (info["width"], info["height"], info["stored"]) == (64, 32, "16-bit PNG")
