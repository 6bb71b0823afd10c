"""Ctrl-C and SIGTERM in a headless run: the job is asked to stop, and it is stopped within two seconds.

The first signal asks what is in flight to stop at its next step (:func:`on_request`: the engine job's cancel token, a
Blender stage's cancel flag, the Ray driver's loop), and the job ends by its normal failure path, which removes what it
started writing. A step that cannot be interrupted — one long Blender render, one model step — does not hold the process:
:data:`GRACE` seconds after the signal (at once on a second one) the process runs what its jobs registered with
:func:`on_stop` (unfinished files and folders removed, worker processes ended), prints one line and exits with
:data:`EXIT_STATUS`. Only :func:`install` turns this on (``batch.py``, the engine worker); in Blender's UI nothing changes.

Python runs a signal handler only between the main thread's bytecodes, and the main thread may be inside a Blender render
for minutes. The C-level handler writes a wake-up byte at once, though, and Blender releases the GIL while it renders, so
a watcher thread reading those bytes does the work; the Python-level handler only records.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from .errors import kept

EXIT_STATUS = 130  # a shell's status for a process stopped by Ctrl-C
GRACE = 1.5  # seconds a job has to stop at its next step before it is stopped where it is
SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _State:
    received: signal.Signals | None = None
    kept: str = ""  # what a stopped job leaves on purpose (a resumable checkpoint, finished shards)
    requests: list[Callable[[], None]] = field(default_factory=list)
    stops: list[tuple[object, Callable[[], None]]] = field(default_factory=list)
    exits: list[Callable[[], None]] = field(default_factory=list)  # at any end through leave() or a signal
    lock: threading.Lock = field(default_factory=threading.Lock)  # guards the lists
    exiting: threading.Lock = field(default_factory=threading.Lock)  # held by whichever thread ends the process
    exiting_thread: int | None = None
    critical: threading.Lock = field(default_factory=threading.Lock)  # held while files are moved into place
    installed: bool = False
    handlers: list[tuple[signal.Signals, Callable[[int, object], None]]] = field(default_factory=list)


_state = _State()


def received() -> signal.Signals | None:
    """The signal that asked this process to stop, if one did."""
    return _state.received


def on_request(action: Callable[[], None]) -> Callable[[], None]:
    """Call ``action`` (from another thread) when a signal asks the job to stop; returns a function that unregisters it."""
    with _state.lock:
        _state.requests.append(action)

    def forget() -> None:
        with _state.lock:
            if action in _state.requests:
                _state.requests.remove(action)

    return forget


def on_stop(key: object, action: Callable[[], None]) -> None:
    """Run ``action`` if the process is stopped where it is, unless :func:`forget` ``(key)`` came first (last registered, first run)."""
    with _state.lock:
        _state.stops.append((key, action))


def forget(key: object) -> None:
    with _state.lock:
        _state.stops = [(k, a) for k, a in _state.stops if k != key]


def remove_on_stop(path: Path) -> Path:
    """``path`` (a file or folder) is being written: it goes if the process is stopped before :func:`forget` ``(path)``."""
    on_stop(path, lambda: _remove(path))
    return path


@contextmanager
def unfinished(path: Path) -> Iterator[Path]:
    """``path`` is removed if the process is stopped inside the block; the block itself removes it on failure as it sees fit."""
    remove_on_stop(path)
    try:
        yield path
    finally:
        forget(path)


def remove_on_exit(path: Path) -> None:
    """``path`` goes when the process ends through :func:`leave` or a signal (Blender's session folder: ``os._exit`` skips its own clean-up)."""
    with _state.lock:
        _state.exits.append(lambda: _remove(path))


def leave(code: int) -> NoReturn:
    """End the process with ``code`` without the interpreter's shutdown (bpy can hang in it after rendering), after the :func:`remove_on_exit` removals."""
    claim_exit()
    _run([*_state.exits])
    _flush()
    os._exit(code)


@contextmanager
def uninterrupted() -> Iterator[None]:
    """A short step that a stop must not cut in two (files moved into place, all or nothing): a stop waits for it."""
    with _state.critical:
        yield


def keep(note: str) -> None:
    """What a job stopped by a signal leaves on purpose, for the last line (e.g. "the checkpoint at step 40: --resume")."""
    _state.kept = note


def message(what: str) -> str:
    """The one line a stopped run prints."""
    name = _state.received.name if _state.received is not None else "a signal"
    return f"interrupted ({name}): {what} stopped; {_state.kept or 'nothing written'}"


def exit_now(what: str, reason: BaseException | None = None) -> None:
    """End the process now: run the registered stops, print :func:`message`, exit :data:`EXIT_STATUS` (one thread only).

    ``reason``: how the job ended, if it did; a cancelled job's message may say what it kept (:func:`errors.kept`)."""
    if reason is not None and kept(reason):
        keep(kept(reason))
    claim_exit()
    with _state.critical, _state.lock:  # a set of files being moved into place lands first
        actions = [a for _, a in reversed(_state.stops)] + _state.exits
    _run(actions)
    _flush()
    os.write(2, (message(what) + "\n").encode())  # not through sys.stderr: the main thread may hold its lock
    os._exit(EXIT_STATUS)


def _run(actions: list[Callable[[], None]]) -> None:
    for action in actions:
        try:
            action()
        except Exception:  # one that fails must not keep the others from running
            pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def claim_exit() -> None:
    """This thread ends the process from here on; a signal's timer no longer does. If another thread is ending it, wait for that."""
    if _state.exiting_thread == threading.get_ident():
        return
    if not _state.exiting.acquire(blocking=False):
        threading.Event().wait()
    _state.exiting_thread = threading.get_ident()


def reinstate() -> None:
    """Our handlers again, after a library set its own (``ray.init`` raises KeyboardInterrupt on SIGINT); main thread only."""
    for sig, handler in _state.handlers:
        signal.signal(sig, handler)


def install(what: Callable[[], str], grace: float = GRACE, signals: tuple[signal.Signals, ...] = SIGNALS) -> None:
    """Handle ``signals`` in this process (main thread only): ``what()`` names the stopped job in the last line."""
    if _state.installed:
        return
    _state.installed = True
    if os.name == "nt":  # a wake-up fd must be a socket there: the handler itself does the work, between bytecodes
        _state.handlers = [(sig, lambda signum, frame: _signalled(signal.Signals(signum), what, grace)) for sig in signals]
        reinstate()
        return
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    # The watcher does the work; the handler only lets the wake-up byte through (a raise would land in a render handler).
    _state.handlers = [(sig, lambda signum, frame: None) for sig in signals]
    reinstate()

    def watch() -> None:
        while True:
            for number in os.read(read, 64):
                _signalled(signal.Signals(number), what, grace)

    threading.Thread(target=watch, name="diffusion3d-interrupts", daemon=True).start()


def _signalled(sig: signal.Signals, what: Callable[[], str], grace: float) -> None:
    if _state.received is not None or grace <= 0:  # a second signal, or no patience: stop where it is
        _state.received = _state.received or sig
        exit_now(what())
        return
    _state.received = sig
    with _state.lock:
        requests = list(_state.requests)
    _run(requests)
    timer = threading.Timer(grace, lambda: exit_now(what()))
    timer.daemon = True
    timer.start()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
