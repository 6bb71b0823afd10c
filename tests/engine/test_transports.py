"""Both transports behave the same: results, progress, cancel, errors; the worker's death is survivable."""

import os
import signal
import stat
import sys
import time

import numpy as np
import pytest

from engine.client import SubprocessTransport, make_client
from engine.diffusion.sources import ModelAccess
from engine.errors import BadInput, EngineError, JobCancelled
from engine.info import InfoRequest
from engine.jobs import EchoRequest, WorldSphereRequest
from engine.world.model_listing import ModelsRequest

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["IN_PROCESS", "SUBPROCESS"])
def client(request):
    c = make_client(request.param, sys.executable)
    yield c
    c.release()


def test_arrays_and_fields_round_trip_exactly(client):
    arrays = {"rgb": np.arange(24, dtype=np.uint8).reshape(2, 4, 3), "depth": np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 4)}
    result = client.run("echo", EchoRequest(arrays=arrays, steps=2))
    assert result.steps_done == 2
    for name, value in arrays.items():
        assert result.arrays[name].dtype == value.dtype
        np.testing.assert_array_equal(result.arrays[name], value)


def test_world_sphere_is_identical_in_both_modes():
    depth = np.random.default_rng(0).uniform(1, 5, (16, 32)).astype(np.float32)
    request = WorldSphereRequest(depth=depth, rgb_size=(32, 16), step=1)
    results = []
    for mode in ("IN_PROCESS", "SUBPROCESS"):
        c = make_client(mode, sys.executable)
        try:
            results.append(c.run("world_sphere", request))
        finally:
            c.release()
    a, b = results
    for field in ("vertices", "face_starts", "corner_verts", "corner_uvs"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (a.rows, a.cols, a.min_distance) == (b.rows, b.cols, b.min_distance)


def test_a_request_with_a_nested_model_access_reaches_the_job_in_both_modes(client, tmp_path):
    model = tmp_path / "models" / "tiny"
    (model / "unet").mkdir(parents=True)
    (model / "vae").mkdir()
    (model / "vae" / "config.json").write_text('{"out_channels": 6}')
    access = ModelAccess(models_dir=str(tmp_path / "models"), cache_dir=str(tmp_path / "no-cache"))
    result = client.run("list_models", ModelsRequest(access=access))
    assert result.sources == [str(model)] and result.kinds == ["rgbd6"]


def test_progress_events_arrive_in_order_with_previews(client):
    seen = []
    client.run("echo", EchoRequest(steps=4, seconds_per_step=0.01), on_progress=seen.append)
    assert [(p.done, p.total) for p in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert seen[-1].message == "Step 4 of 4"
    assert seen[0].preview is not None and seen[0].preview.shape == (2, 4, 3)


@pytest.mark.timed
def test_cancel_stops_between_steps(client):
    handle = client.submit("echo", EchoRequest(steps=200, seconds_per_step=0.02))
    while handle.progress is None:
        handle.poll(timeout=1)
    handle.cancel()
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        handle.wait(timeout=10)
    assert time.monotonic() - started < 2
    assert handle.progress.done < 200
    assert client.run("echo", EchoRequest(steps=1)).steps_done == 1  # the engine is usable again


def test_stop_returns_once_the_cancelled_job_has_ended_and_the_engine_is_free(client):
    handle = client.submit("echo", EchoRequest(steps=200, seconds_per_step=0.02))
    assert handle.stop(timeout=10)
    assert handle.state == "cancelled" and not client.busy
    assert client.run("echo", EchoRequest(steps=1)).steps_done == 1


def test_errors_arrive_as_one_readable_line(client):
    with pytest.raises(EngineError) as info:
        client.run("echo", EchoRequest(fail_with="CUDA out of memory.\nTried to allocate 2 GiB"))
    assert str(info.value) == "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    with pytest.raises(BadInput, match="must be the same size"):
        client.run("world_sphere", WorldSphereRequest(depth=np.ones((4, 8), np.float32), rgb_size=(16, 8)))
    with pytest.raises(BadInput, match="2:1"):
        client.run("world_sphere", WorldSphereRequest(depth=np.ones((4, 6), np.float32), rgb_size=(6, 4)))
    with pytest.raises(BadInput, match="Unknown engine job"):
        client.run("no_such_job", EchoRequest())


def test_one_job_at_a_time(client):
    handle = client.submit("echo", EchoRequest(steps=50, seconds_per_step=0.02))
    with pytest.raises(EngineError, match="busy"):
        client.submit("echo", EchoRequest())
    handle.cancel()
    with pytest.raises(JobCancelled):
        handle.wait(timeout=10)


def test_killed_worker_fails_the_job_clearly_and_the_next_job_works():
    c = make_client("SUBPROCESS", sys.executable)
    try:
        handle = c.submit("echo", EchoRequest(steps=500, seconds_per_step=0.02))
        while handle.progress is None:
            handle.poll(timeout=1)
        first_pid = c.transport.pid
        os.kill(first_pid, signal.SIGKILL)
        with pytest.raises(EngineError) as info:
            handle.wait(timeout=20)
        message = str(info.value)
        assert "stopped while running echo" in message and "SIGKILL" in message and "fresh worker" in message
        assert c.run("echo", EchoRequest(steps=1)).steps_done == 1
        assert c.transport.pid != first_pid
    finally:
        c.release()


def test_no_temporary_files_are_left_behind():
    c = make_client("SUBPROCESS", sys.executable)
    transport = c.transport
    assert isinstance(transport, SubprocessTransport)
    big = {"a": np.zeros((64, 64, 3), np.float32)}
    c.run("echo", EchoRequest(arrays=big))
    scratch = transport.scratch
    assert scratch is not None and list(scratch.iterdir()) == []
    with pytest.raises(EngineError):
        c.run("echo", EchoRequest(arrays=big, fail_with="boom"))
    handle = c.submit("echo", EchoRequest(arrays=big, steps=100, seconds_per_step=0.02))
    while handle.progress is None:
        handle.poll(timeout=1)
    handle.cancel()
    with pytest.raises(JobCancelled):
        handle.wait(timeout=10)
    assert list(scratch.iterdir()) == []
    c.release()
    assert not scratch.exists()
    assert "stopped" in c.status()


def test_bad_interpreter_paths_give_a_reason(tmp_path):
    c = make_client("SUBPROCESS", str(tmp_path / "no-python"))
    with pytest.raises(BadInput, match="not found or not executable"):
        c.run("echo", EchoRequest())
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named numpy' >&2\nexit 3\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    c = make_client("SUBPROCESS", str(script))
    with pytest.raises(EngineError) as info:
        c.run("echo", EchoRequest())
    assert "did not start" in str(info.value) and "exited with code 3" in str(info.value)
    assert "No module named numpy" in str(info.value)


def test_release_stops_the_worker():
    c = make_client("SUBPROCESS", sys.executable)
    c.run("echo", EchoRequest())
    pid = c.transport.pid
    c.release()
    time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_engine_info_reports_the_python():
    c = make_client("SUBPROCESS", sys.executable)
    try:
        info = c.run("engine_info", InfoRequest(import_torch=False))
    finally:
        c.release()
    assert info.executable and info.packages["numpy"] == np.__version__
    assert "numpy" in info.summary()
