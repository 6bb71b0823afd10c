"""Ctrl-C and SIGTERM in a headless process: asked to stop, stopped within two seconds, unfinished files removed."""

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timed

#: A job that writes into an unfinished folder; it either checks its cancel flag each 0.1 s or never does (a long render).
JOB = textwrap.dedent(
    """
    import sys, time, threading
    from pathlib import Path
    from engine import interrupts

    folder, mode = Path(sys.argv[1]), sys.argv[2]
    interrupts.install(lambda: "the test job")
    stop = threading.Event()
    interrupts.on_request(stop.set)
    if mode == "keeps":
        interrupts.keep("the checkpoint at step 3: --resume continues")
    with interrupts.unfinished(folder):
        folder.mkdir()
        (folder / "part.bin").write_bytes(b"x")
        print("started", flush=True)
        if mode == "deaf":
            while True:
                time.sleep(60)  # the signal's Python handler runs and the sleep goes on: the job never notices
        while not stop.wait(0.1):
            pass
        import shutil
        shutil.rmtree(folder)  # its own failure path
    print("cancelled", flush=True)
    interrupts.exit_now("the test job")
    """
)


def started(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, Path]:
    folder = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", JOB, str(folder), mode], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    return proc, folder


def stopped(proc: subprocess.Popen, sig: signal.Signals) -> tuple[float, str, str]:
    begin = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    return time.monotonic() - begin, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_job_that_checks_between_steps_stops_at_its_next_step_and_exits_130_with_one_line(tmp_path, sig):
    proc, folder = started(tmp_path, "listens")
    seconds, out, err = stopped(proc, sig)
    assert proc.returncode == 130 and seconds < 1.0
    assert out.strip() == "cancelled"
    assert err.strip() == f"interrupted ({sig.name}): the test job stopped; nothing written"
    assert not folder.exists()


def test_a_job_that_never_checks_is_stopped_where_it_is_within_two_seconds_its_unfinished_folder_removed(tmp_path):
    proc, folder = started(tmp_path, "deaf")
    seconds, out, err = stopped(proc, signal.SIGINT)
    assert proc.returncode == 130 and seconds < 2.0
    assert err.strip() == "interrupted (SIGINT): the test job stopped; nothing written" and "Traceback" not in err
    assert not folder.exists()


def test_a_second_signal_stops_it_at_once(tmp_path):
    proc, folder = started(tmp_path, "deaf")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    seconds, _, err = stopped(proc, signal.SIGTERM)
    assert proc.returncode == 130 and seconds < 0.5 and not folder.exists()
    assert err.strip().startswith("interrupted (SIGINT)")


def test_what_a_job_keeps_on_purpose_is_named_in_the_last_line(tmp_path):
    proc, _ = started(tmp_path, "keeps")
    _, _, err = stopped(proc, signal.SIGINT)
    assert err.strip() == "interrupted (SIGINT): the test job stopped; the checkpoint at step 3: --resume continues"


def test_files_staged_for_a_set_are_removed_when_the_process_is_stopped_mid_write_and_what_was_there_stays(tmp_path):
    (tmp_path / "meta.json").write_text("before")
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from engine import interrupts
        from engine.imagefiles import NewFiles

        interrupts.install(lambda: "the test job")
        folder = Path({str(tmp_path)!r})
        files = NewFiles([folder / "rgb.png", folder / "meta.json"], overwrite=True)
        files.write(folder / "rgb.png", lambda p: p.write_bytes(b"new"))
        print("started", flush=True)
        files.write(folder / "meta.json", lambda p: time.sleep(600))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    seconds, _, err = stopped(proc, signal.SIGINT)
    assert proc.returncode == 130 and seconds < 2.0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"] and (tmp_path / "meta.json").read_text() == "before"


def test_what_a_cancelled_job_kept_travels_in_its_message_and_names_itself_in_the_last_line(tmp_path):
    from engine import errors

    training = errors.JobCancelled(f"Training cancelled at step 7{errors.KEPT}the checkpoint in out at step 5 (--resume continues it)")
    assert errors.kept(training) == "the checkpoint in out at step 5 (--resume continues it)"
    assert errors.kept(errors.JobCancelled("render cancelled")) == "" and errors.kept(errors.BadInput(f"x{errors.KEPT}y")) == ""
