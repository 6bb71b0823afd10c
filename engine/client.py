"""One client, two transports: the engine in this process or in a worker process.

Blender code talks only to :class:`EngineClient`. ``submit`` returns a
:class:`JobHandle` that the caller polls (a modal operator's timer) or waits on
(background mode). Both transports deliver the same things: progress events,
then a result or a one-line failure message; cancel is honoured between steps.

The subprocess transport runs ``python -m engine worker`` with the interpreter
the user chose (one with torch, so Blender's own Python stays clean), speaks
JSON lines over its stdin/stdout, and passes arrays as ``.npy`` files in a
private scratch folder. If the worker dies, the job fails with a message that
says so and the next job starts a fresh worker.
"""

from __future__ import annotations

import collections
import itertools
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import PROTOCOL_VERSION, interrupts, protocol
from .errors import BadInput, EngineError, JobCancelled, WorkerDied, readable
from .jobs import BAD_INPUT, CANCELLED, failure_kind, job, run_job
from .progress import CancelToken, Progress, ProgressCallback
from .runtime import release_memory

ENGINE_ROOT = Path(__file__).resolve().parent.parent  # the folder that holds the engine package

RUNNING, DONE, FAILED, CANCELLED_STATE = "running", "done", "failed", "cancelled"


class JobHandle:
    """A submitted job: poll it or wait on it, cancel it any time."""

    def __init__(self, name: str, cancel: Callable[[], None]) -> None:
        self.name = name
        self.state = RUNNING
        self.progress: Progress | None = None
        self.result: Any = None
        self.error = ""
        self._failure = ""
        self._cancel = cancel
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()

    # Transport side -----------------------------------------------------------
    def _push(self, kind: str, payload: Any) -> None:
        self._events.put((kind, payload))

    # Caller side --------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.state != RUNNING

    def cancel(self) -> None:
        if not self.finished:
            self._cancel()

    def poll(self, timeout: float | None = None) -> list[Progress]:
        """Apply events that arrived; returns the new progress events.

        With ``timeout``, waits up to that long for the first event.
        """
        fresh: list[Progress] = []
        block = timeout is not None
        while not self.finished:
            try:
                kind, payload = self._events.get(block=block, timeout=timeout)
            except queue.Empty:
                break
            block = False
            if self._apply(kind, payload):
                fresh.append(payload)
        return fresh

    def stop(self, timeout: float = 10.0) -> bool:
        """Cancel and wait until the job has ended, its partial files removed; False if it still runs after ``timeout`` s."""
        self.cancel()
        deadline = time.monotonic() + timeout
        while not self.finished and (left := deadline - time.monotonic()) > 0:
            try:
                self._apply(*self._events.get(timeout=min(left, 0.25)))
            except queue.Empty:
                pass
        return self.finished

    def _apply(self, kind: str, payload: Any) -> bool:
        """Take one event in; True when it is progress."""
        if kind == "progress":
            self.progress = payload
            return True
        if kind == "result":
            self.result, self.state = payload, DONE
        else:  # (failure kind, message)
            failure, self.error = payload
            self.state = CANCELLED_STATE if failure == CANCELLED else FAILED
            self._failure = failure
        return False

    def wait(self, on_progress: ProgressCallback | None = None, timeout: float | None = None) -> Any:
        """Block until the job ends; return its result or raise its failure."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                raise EngineError(f"{self.name} did not finish within {timeout:g} s")
            for event in self.poll(timeout=left):
                if on_progress is not None:
                    on_progress(event)
        return self.outcome()

    def outcome(self) -> Any:
        """The result of a finished job, or its failure raised as an EngineError."""
        if self.state == DONE:
            return self.result
        if self.state == CANCELLED_STATE:
            raise JobCancelled(self.error or "Cancelled")
        if self.state == FAILED:
            raise (BadInput if self._failure == BAD_INPUT else EngineError)(self.error)
        raise EngineError(f"{self.name} is still running")


class Transport(ABC):
    """How jobs reach the engine. One job at a time."""

    mode = ""

    @abstractmethod
    def start(self, name: str, request: Any, handle: JobHandle, token: CancelToken) -> None:
        """Begin running; events go to ``handle``."""

    def cancel(self, handle: JobHandle, token: CancelToken) -> None:
        token.cancel()

    @abstractmethod
    def release(self) -> None:
        """Free the engine's memory (and stop a worker)."""

    @abstractmethod
    def status(self) -> str:
        """One line for the UI."""


class InProcessTransport(Transport):
    """Runs jobs on a thread inside this process (Blender's own Python)."""

    mode = "IN_PROCESS"

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    def start(self, name: str, request: Any, handle: JobHandle, token: CancelToken) -> None:
        def work() -> None:
            try:
                result = run_job(name, request, lambda p: handle._push("progress", p), token)
                handle._push("result", result)
            except BaseException as exc:  # same one-line messages as the worker sends
                handle._push("error", (failure_kind(exc), readable(exc)))

        self._thread = threading.Thread(target=work, name=f"diffusion3d-{name}", daemon=True)
        self._thread.start()

    def release(self) -> None:
        if self._thread is not None:
            self._thread.join(timeout=30)
        release_memory()

    def status(self) -> str:
        busy = self._thread is not None and self._thread.is_alive()
        return "In Blender's Python" + (" (busy)" if busy else "")


def scratch_root() -> str | None:
    """Memory-backed temp space where there is one (Linux), else the default."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is not responding"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (killed: often the system ran out of memory)" if -code == getattr(signal, "SIGKILL", 9) else ""
        return f"was stopped by {name}{hint}"
    return f"exited with code {code}"


class SubprocessTransport(Transport):
    """A persistent worker process started with the user's Python."""

    mode = "SUBPROCESS"

    def __init__(self, python: str, env: dict[str, str] | None = None, start_timeout: float = 60.0) -> None:
        self.python = python
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._scratch: Path | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_reader: threading.Thread | None = None
        self._lock = threading.Lock()
        self._handle: JobHandle | None = None
        self._ids = itertools.count(1)
        self._job_id = 0
        self._job_spec: Any = None
        self.pid: int | None = None

    # Worker life --------------------------------------------------------------
    def _check_python(self) -> None:
        path = Path(self.python)
        if not self.python or not path.is_file() or not os.access(path, os.X_OK):
            raise BadInput(f"Engine Python not found or not executable: {self.python or '(empty)'}")

    def _ensure_worker(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._cleanup()
        self._check_python()
        self._scratch = Path(tempfile.mkdtemp(prefix="diffusion3d-", dir=scratch_root()))
        env = dict(os.environ)
        env.update(self.extra_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ENGINE_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        for blender_var in ("PYTHONHOME",):  # Blender's own settings would break another Python
            env.pop(blender_var, None)
        flags = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "engine", "worker", "--scratch", str(self._scratch)],
                cwd=str(ENGINE_ROOT),
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                bufsize=1,
                creationflags=flags,
            )
        except OSError as exc:
            self._cleanup()
            raise BadInput(f"Could not start the engine with {self.python}: {exc.strerror or exc}") from None
        self._proc, self.pid = proc, proc.pid
        interrupts.on_stop(self, self._end_worker)  # a signal that stops this process ends the worker, its partial files removed
        self._stderr.clear()
        hellos: queue.Queue[dict[str, Any]] = queue.Queue()
        self._stderr_reader = threading.Thread(target=self._read_stderr, args=(proc,), daemon=True)
        self._stderr_reader.start()
        threading.Thread(target=self._read_stdout, args=(proc, hellos), daemon=True).start()
        try:
            hello = hellos.get(timeout=self.start_timeout)
        except queue.Empty:
            hello = {}
        if hello.get("type") != "hello":
            self._kill()
            raise EngineError(f"The engine worker ({self.python}) {self._death_reason(proc, 'did not start')}")
        if hello.get("protocol") != PROTOCOL_VERSION:
            self._kill()
            raise EngineError(
                f"The engine worker speaks protocol {hello.get('protocol')}, this add-on {PROTOCOL_VERSION}: "
                "the add-on folder is a mix of versions; reinstall it"
            )
        return proc

    def _death_reason(self, proc: subprocess.Popen[str], prefix: str) -> str:
        try:
            code = proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and self._stderr_reader is not None:
            self._stderr_reader.join(timeout=2)  # its last words may still be in the pipe
        tail = self._stderr_tail()
        return f"{prefix}: it {describe_exit(code)}" + (f". Last output: {tail}" if tail else "")

    def _stderr_tail(self) -> str:
        lines = [line.strip() for line in list(self._stderr) if line.strip()]
        return " | ".join(lines[-3:])[-600:]

    def _read_stderr(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self._stderr.append(line)

    def _read_stdout(self, proc: subprocess.Popen[str], hellos: queue.Queue[dict[str, Any]]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                message = protocol.loads(line)
            except ValueError:
                self._stderr.append(line)  # not ours: keep it for the error message
                continue
            if message["type"] == "hello":
                hellos.put(message)
            else:
                self._dispatch(message)
        hellos.put({})  # wakes a start that is still waiting
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None and not handle.finished:
            reason = self._death_reason(proc, f"The engine worker stopped while running {handle.name}")
            handle._push("error", ("failed", reason + ". The next job starts a fresh worker."))
            self._sweep()

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._lock:
            handle = self._handle if message.get("id") == self._job_id else None
        if handle is None or self._scratch is None:
            return
        kind = message["type"]
        if kind == "progress":
            preview = protocol.decode(message["preview"], self._scratch) if "preview" in message else None
            handle._push("progress", Progress(message["done"], message["total"], message.get("message", ""), preview))
            return
        if kind == "result":
            try:
                payload: tuple[str, Any] = ("result", protocol.decode_as(self._job_spec.result, message["result"], self._scratch))
            except Exception as exc:
                payload = ("error", ("failed", f"Could not read the engine's result: {readable(exc)}"))
        else:
            payload = ("error", (message.get("kind", "failed"), message.get("message", "Unknown engine error")))
        with self._lock:
            self._handle = None
        self._sweep()
        handle._push(*payload)

    def _sweep(self) -> None:
        """Remove array files nobody will read (a failed or cancelled job's)."""
        if self._scratch is not None and self._scratch.is_dir():
            for leftover in self._scratch.iterdir():
                leftover.unlink(missing_ok=True)

    # Transport API ------------------------------------------------------------
    def start(self, name: str, request: Any, handle: JobHandle, token: CancelToken) -> None:
        spec = job(name)
        proc = self._ensure_worker()
        assert self._scratch is not None and proc.stdin is not None
        job_id = next(self._ids)
        self._stderr.clear()  # an error message quotes this job's output only
        with self._lock:
            self._handle, self._job_id, self._job_spec = handle, job_id, spec
        try:
            line = protocol.dumps({"type": "run", "id": job_id, "job": name, "request": protocol.encode(request, self._scratch)})
            proc.stdin.write(line)
            proc.stdin.flush()
        except (OSError, ValueError):
            with self._lock:
                self._handle = None
            self._sweep()
            raise WorkerDied(self._death_reason(proc, "The engine worker stopped before it got the job")) from None

    def cancel(self, handle: JobHandle, token: CancelToken) -> None:
        token.cancel()
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            try:
                proc.stdin.write(protocol.dumps({"type": "cancel", "id": self._job_id}))
                proc.stdin.flush()
            except (OSError, ValueError):
                pass  # a dead worker reports itself through the reader thread

    def release(self) -> None:
        """Stop the worker: all its memory (models, GPU) goes back to the system."""
        proc = self._proc
        if proc is not None and proc.poll() is None and proc.stdin is not None:
            try:
                proc.stdin.write(protocol.dumps({"type": "exit"}))
                proc.stdin.flush()
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        self._kill()

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._cleanup()

    def _end_worker(self) -> None:
        """SIGTERM first: the worker removes what its job was writing (its own signal handling), then exits."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        self._kill()

    def _cleanup(self) -> None:
        interrupts.forget(self)
        self._proc = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def status(self) -> str:
        if self._proc is not None and self._proc.poll() is None:
            return f"Worker running (pid {self._proc.pid}, {self.python})"
        return f"Worker stopped ({self.python or 'no interpreter set'})"

    @property
    def scratch(self) -> Path | None:
        return self._scratch


class EngineClient:
    """What Blender talks to. One job at a time; ``release`` frees the engine."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._active: JobHandle | None = None
        interrupts.on_request(self._cancel_active)  # a signal asks the job in flight to stop (headless runs)

    def _cancel_active(self) -> None:
        if self._active is not None:
            self._active.cancel()

    @property
    def mode(self) -> str:
        return self.transport.mode

    @property
    def busy(self) -> bool:
        if self._active is not None:
            self._active.poll()
        return self._active is not None and not self._active.finished

    def submit(self, name: str, request: Any) -> JobHandle:
        if self.busy:
            assert self._active is not None
            raise EngineError(f"The engine is busy with {self._active.name}; wait for it or cancel it")
        token = CancelToken()
        handle = JobHandle(name, lambda: self.transport.cancel(handle, token))
        self.transport.start(name, request, handle, token)
        self._active = handle
        return handle

    def run(self, name: str, request: Any, on_progress: ProgressCallback | None = None) -> Any:
        """Submit and block until done (background mode, batch jobs, tests)."""
        return self.submit(name, request).wait(on_progress)

    def release(self) -> None:
        if self._active is not None and not self._active.finished:
            self._active.cancel()
        self.transport.release()

    def status(self) -> str:
        return self.transport.status()


def make_client(mode: str, python: str = "", env: dict[str, str] | None = None) -> EngineClient:
    """A client for ``IN_PROCESS`` or ``SUBPROCESS`` (with ``python``, default this interpreter)."""
    if mode == InProcessTransport.mode:
        return EngineClient(InProcessTransport())
    if mode == SubprocessTransport.mode:
        return EngineClient(SubprocessTransport(python or sys.executable, env))
    raise BadInput(f"Unknown engine mode {mode!r}")
