"""The subprocess side: ``python -m engine worker --scratch DIR``.

Reads requests from stdin, runs one job at a time in a thread (so a cancel can
arrive while it runs), writes events to stdout. Anything else that prints,
including C libraries, is diverted to stderr so it can never corrupt the
protocol. When stdin closes (Blender quit or released the engine) the worker
exits: it never outlives its client.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, TextIO

from . import PROTOCOL_VERSION, __version__, interrupts, protocol
from .errors import readable
from .jobs import FAILED, failure_kind, job, run_job
from .progress import CancelToken, Progress
from .runtime import divert_stdout


class Worker:
    def __init__(self, scratch: Path, out: TextIO) -> None:
        self.scratch = scratch
        self._out = out
        self._lock = threading.Lock()
        self._token: CancelToken | None = None
        self._job_id: Any = None
        self._thread: threading.Thread | None = None

    def send(self, message: dict[str, Any]) -> None:
        line = protocol.dumps(message)
        with self._lock:
            self._out.write(line)
            self._out.flush()

    def serve(self, stdin: TextIO) -> None:
        self.send({"type": "hello", "protocol": PROTOCOL_VERSION, "version": __version__, "pid": os.getpid()})
        for line in stdin:
            if not line.strip():
                continue
            message = protocol.loads(line)
            kind = message["type"]
            if kind == "run":
                self._start(message)
            elif kind == "cancel":
                if self._token is not None and message.get("id") == self._job_id:
                    self._token.cancel()
            elif kind == "exit":
                break
        if self._token is not None:
            self._token.cancel()
        self._wait_idle()

    def _wait_idle(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def _start(self, message: dict[str, Any]) -> None:
        self._wait_idle()  # the client sends one job at a time; never run two
        self._token, self._job_id = CancelToken(), message["id"]
        self._thread = threading.Thread(target=self._run, args=(message, self._token), daemon=True)
        self._thread.start()

    def _run(self, message: dict[str, Any], token: CancelToken) -> None:
        job_id = message["id"]
        try:
            spec = job(message["job"])
            request = protocol.decode_as(spec.request, message["request"], self.scratch)

            def emit(p: Progress) -> None:
                event = {"type": "progress", "id": job_id, "done": p.done, "total": p.total, "message": p.message}
                if p.preview is not None:
                    event["preview"] = protocol.encode(p.preview, self.scratch)
                self.send(event)

            result = run_job(message["job"], request, emit, token)
            self.send({"type": "result", "id": job_id, "result": protocol.encode(result, self.scratch)})
        except BaseException as exc:  # every failure becomes one readable line
            if failure_kind(exc) == FAILED:
                traceback.print_exc(file=sys.stderr)
            self.send({"type": "error", "id": job_id, "kind": failure_kind(exc), "message": readable(exc)})


def main(scratch: str) -> int:
    folder = Path(scratch)
    if not folder.is_dir():
        print(f"Scratch folder {scratch} does not exist", file=sys.stderr)
        return 2
    out = divert_stdout(2)  # the real stdout is the protocol's alone
    sys.stdout = sys.stderr
    # Ctrl-C on a terminal reaches the whole process group: the client decides (it cancels, or ends the worker with SIGTERM,
    # which removes what the job was writing at once).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts.install(lambda: "the engine worker", grace=0, signals=(signal.SIGTERM,))
    Worker(folder, out).serve(sys.stdin)
    out.flush()
    return 0
