"""The driver: a job's shards as Ray tasks — scheduled, retried, watched on one progress line — then merged, all or nothing.

A plain Python process runs it (no Blender). Each shard is one Ray task that
runs the single-machine job in a fresh process (``tasks.run_shard``) and
writes into ``OUT.shards/shard-I-of-N`` on storage every node reaches. A task
whose process dies is retried (``retries`` times); one that failed for good is
named in the summary with its last error and the set stays unmerged. Running
the same command again resumes: shards the manifest lists as done are
skipped, and a merged set is left as it is. Nothing is written into ``OUT``
until every shard is done and the merge runs.

A job either builds a new output (its merge writes it aside, then it is
renamed into place) or updates an existing data set in place (generation,
the K-fold filter: its merge joins the shards' files into it, all or nothing;
its shards lie in ``OUT.shards/JOB``). :func:`run_chain` runs jobs one after
another on one connection, each starting once the one before it merged.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .. import interrupts
from ..errors import BadInput, JobCancelled
from ..params import Note, param, refuse
from ..progress import PIPED_EVERY, duration, is_terminal, write_line
from .manifest import DONE, FAILED, MANIFEST, MERGED, PENDING, RUNNING, Manifest, Shard, open_manifest
from .tasks import ATTEMPT, OUT

LOCAL, AUTO = "local", "auto"
INCOMPLETE = 3  # the exit status of a run that leaves shards failed
MERGING = ".merging"  # in the shards folder: the merged set before it is renamed into place


@dataclass
class ClusterOptions:
    """How a job runs on Ray (``batch.py … --ray ADDRESS --shards N``); a plain Python runs the driver."""

    address: str = param("", "Ray", "auto (a running cluster), local (start one here) or host:port", cli="--ray")
    retries: int = param(3, "Retries", "Attempts after a task's process dies", min=0, max=100)
    cpus_per_task: float = param(
        1.0, "CPUs per Task", "A task's CPUs (its renders use as many threads)", min=0.0, open_min=True, max=1024.0
    )
    gpus_per_task: float | None = param(
        None, "GPUs per Task", "Default: 1 for model jobs when the cluster has GPUs, else 0", min=0.0, max=64.0
    )
    shards: int = param(0, "Shards", "With --ray: how many shards (one Ray task each)", min=0, max=100_000)
    task_python: str = param("", "Task Python", "The Python with the bpy module each task runs (default: this one)")
    blender: str = param("", "Blender", "Or the Blender each task runs (blender -b --python batch.py -- …)")

    def check(self) -> list[Note]:
        if self.address and self.shards < 1:
            refuse("shards", "--ray needs --shards N (how many Ray tasks to split the job into)")
        return []


@dataclass
class ShardedJob:
    name: str  # the subcommand
    parameters: dict[str, Any]  # the request every shard shares (the manifest's key)
    output: Path
    count: int  # shards
    command: Callable[[int, int], list[str]]  # (I, N) → the shard's argv, its output folder as tasks.OUT
    merge: Callable[[list[Path], Path], dict[str, Any]]  # the finished shards → the output, all or nothing
    seeds: Callable[[int, int], dict[str, Any]] = lambda i, n: {}
    images: Callable[[dict[str, Any]], int] = lambda summary: 0  # a finished shard's images, from its JSON summary
    work: Callable[[dict[str, Any]], float] = lambda summary: 0.0  # the seconds the job itself reports (the rest is overhead)
    progress_label: str | None = ""  # the progress lines that count images while a shard runs ("": any; None: none do)
    needs_gpu: bool = False  # a model job
    updates: bool = False  # the merge updates the existing output in place, rather than building it
    check: Callable[[], None] = lambda: None  # the job's own refusals (BadInput) before any task starts
    cwd: str = field(default_factory=lambda: str(Path.cwd()))

    @property
    def folder(self) -> Path:
        """Where its shards and manifest lie: beside the output, in a sub-folder for a job that updates it."""
        beside = self.output.parent / f"{self.output.name}.shards"
        return beside / self.name if self.updates else beside


@dataclass
class RunSummary:
    job: str
    folder: str  # its shards and manifest
    output: str
    shards: int
    done: int
    failed: list[dict[str, Any]]  # index, folder, attempts, error
    skipped: int  # done before this run
    merged: bool
    images: int
    seconds: float
    merge: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise BadInput("Scaling out needs Ray: install the ray package (pip install -r requirements-ray.txt)") from None
    return ray


def connect(ray: Any, address: str) -> None:
    """Join the cluster at ``address`` (refused at once when nothing answers there), or start one on this machine."""
    engine = Path(__file__).resolve().parents[1]  # the workers import tasks from this copy of the engine
    runtime = {"py_modules": [str(engine)], "env_vars": {"PYTHONUNBUFFERED": "1"}}
    if address == LOCAL:
        ray.init(runtime_env=runtime, logging_level="ERROR", log_to_driver=False, include_dashboard=False)
        return
    if address != AUTO:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise BadInput(f"A Ray address is host:port, 'auto' or 'local', not {address!r}")
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
        except OSError as exc:
            raise BadInput(f"Cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None
    try:
        ray.init(address=address, runtime_env=runtime, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError) as exc:
        raise BadInput(f"Cannot join the Ray cluster at {address}: {str(exc).splitlines()[0]}") from None


def gpus_per_task(job: ShardedJob, options: ClusterOptions, cluster_gpus: float, notes: list[str]) -> float:
    if options.gpus_per_task is not None:
        if options.gpus_per_task > 0 and cluster_gpus <= 0:
            raise BadInput(f"The cluster has no GPUs, but each task asks for {options.gpus_per_task:g} (--gpus-per-task)")
        return options.gpus_per_task
    if job.needs_gpu and cluster_gpus <= 0:
        notes.append(f"{job.name} is a model job but the cluster has no GPUs: its tasks run on CPUs (slowly)")
        return 0.0
    return 1.0 if job.needs_gpu else 0.0


class Cluster:
    """The connection a run makes once, when the first job with shards left to run needs it."""

    def __init__(self, options: ClusterOptions) -> None:
        self.options = options
        self.ray: Any = None

    def join(self) -> Any:
        if self.ray is None:
            ray = import_ray()
            connect(ray, self.options.address)
            interrupts.reinstate()  # Ray's SIGINT handler raises KeyboardInterrupt wherever the driver is: ours asks its loop
            self.ray = ray
        return self.ray

    def close(self) -> None:
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None


def run_chain(jobs: list[ShardedJob], options: ClusterOptions, out: TextIO = sys.stderr) -> list[RunSummary]:
    """Jobs one after another (each reads what the one before merged); stops after one that leaves shards failed."""
    cluster = Cluster(options)
    runs: list[RunSummary] = []
    try:
        for job in jobs:
            runs.append(run_sharded(job, cluster, out))
            if not runs[-1].merged:
                break
    finally:
        cluster.close()
    return runs


def run_sharded(job: ShardedJob, cluster: Cluster, out: TextIO = sys.stderr) -> RunSummary:
    """One job: its pending shards as tasks on the cluster, then its merge once every shard is done."""
    options = cluster.options
    started = time.perf_counter()
    if job.count < 1:
        raise BadInput(f"--shards must be at least 1, got {job.count}")
    if options.retries < 0:
        raise BadInput(f"--retries must be 0 or more, got {options.retries}")
    folder = job.folder
    shards = [
        Shard(i, str(folder / f"shard-{i:0{len(str(job.count))}d}-of-{job.count}"), job.seeds(i, job.count))
        for i in range(1, job.count + 1)
    ]
    path = folder / MANIFEST
    created = next((f for f in (folder.parent, folder) if not f.exists()), None)  # what a refused run removes
    try:
        manifest = open_manifest(folder, job.name, job.parameters, job.output, shards)
    except OSError as exc:
        raise BadInput(f"Cannot write the shard folder {folder}: {exc.strerror or exc}") from None
    skipped = manifest.count(DONE)
    if manifest.merged and job.output.is_dir():
        return RunSummary(
            job.name, str(folder), str(job.output), job.count, job.count, [], job.count, True, sum(s.images for s in manifest.shards), 0.0
        )

    notes: list[str] = []
    pending = [s for s in manifest.shards if s.state == PENDING]
    try:  # a run refused before its tasks start leaves no shard folder it made
        if job.updates and not job.output.is_dir():
            raise BadInput(f"No data set at {job.output}")
        if not job.updates and job.output.exists():
            raise BadInput(f"{job.output} exists and is not this job's merged set: choose another --out")
        job.check()
        remove_attempts(folder)  # what the tasks (or the merge) of a driver that died were writing
        if pending:
            ray = cluster.join()
            largest = max((n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)
            if options.cpus_per_task > largest:
                raise BadInput(
                    f"No node has {options.cpus_per_task:g} CPUs for a task (the largest has {largest:g}): lower --cpus-per-task"
                )
            gpus = gpus_per_task(job, options, ray.cluster_resources().get("GPU", 0.0), notes)
    except BadInput:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    if pending:
        for note in notes:  # before anything starts
            out.write(f"note: {note}\n")
        _run_tasks(cluster.join(), job, options, manifest, path, pending, gpus, out)
    failed = [
        {"index": s.index, "folder": s.folder, "attempts": s.attempts, "error": s.error} for s in manifest.shards if s.state == FAILED
    ]
    summary = RunSummary(
        job.name, str(folder), str(job.output), job.count, manifest.count(DONE), failed, skipped, False, 0, 0.0, notes=notes
    )
    if not failed and job.updates:  # the job's own join: all or nothing, and safe to run again
        summary.merge = job.merge([Path(s.folder) for s in manifest.shards], job.output)
    elif not failed:  # merged aside, then renamed into place: a driver killed while merging leaves no output
        staging = folder / MERGING
        shutil.rmtree(staging, ignore_errors=True)
        summary.merge = job.merge([Path(s.folder) for s in manifest.shards], staging)
        os.rename(staging, job.output)
    if not failed:
        manifest.merged, summary.merged = True, True
        for shard in manifest.shards:
            shard.state = MERGED
        manifest.save(path)
        for shard in manifest.shards:  # the merged set holds everything they did
            shutil.rmtree(shard.folder, ignore_errors=True)
    remove_attempts(folder)
    summary.images = sum(s.images for s in manifest.shards)
    summary.seconds = time.perf_counter() - started
    return summary


def chain_summary(command: str, address: str, jobs: list[ShardedJob], runs: list[RunSummary]) -> tuple[dict[str, Any], int]:
    """What ``batch.py … --ray`` prints of a run (each failed shard named on stderr first), and its exit status."""
    failed = [{"job": run.job, **failure} for run in runs for failure in run.failed]
    for run in runs:
        for failure in run.failed:
            what = f"{run.job} shard {failure['index']}/{run.shards}"
            print(f"error: {what} failed after {failure['attempts']} attempt(s): {failure['error']}", file=sys.stderr)
    first, complete = runs[0], len(runs) == len(jobs) and runs[-1].merged
    summary = {
        "command": command,
        "ray": address,
        "paths": {"dataset": first.output if complete else None, "shards": first.folder},
        "shards": first.shards,
        "done": first.done,
        "skipped": first.skipped,
        "failed": failed,
        "complete": complete,
        "images": first.images,
        "notes": [note for run in runs for note in run.notes],
        **{key: value for run in runs for key, value in run.merge.items()},
        "timings_s": {"total": round(sum(run.seconds for run in runs), 3)},
    }
    if len(jobs) > 1:  # a chain: each job's own figures
        summary["phases"] = [
            {"job": r.job, "shards": r.shards, "done": r.done, "skipped": r.skipped, "images": r.images, "seconds": round(r.seconds, 3)}
            for r in runs
        ]
    return summary, 0 if complete else INCOMPLETE


def remove_attempts(folder: Path) -> None:
    """Attempt folders no task will finish, and a merge no driver will finish: left when their driver was killed."""
    for attempt in [*folder.glob(f".*{ATTEMPT}*"), folder / MERGING]:
        shutil.rmtree(attempt, ignore_errors=True)


def _run_tasks(
    ray: Any, job: ShardedJob, options: ClusterOptions, manifest: Manifest, path: Path, pending: list[Shard], gpus: float, out: TextIO
) -> None:
    from .tasks import Board, ShardProcessDied, run_shard

    board = ray.remote(num_cpus=0)(Board).remote()
    remote = ray.remote(run_shard).options(
        num_cpus=options.cpus_per_task, num_gpus=gpus, max_retries=options.retries, retry_exceptions=[ShardProcessDied]
    )
    refs = {}
    for shard in pending:
        argv = job.command(shard.index, job.count)
        assert OUT in argv, "a shard's command names its output folder as tasks.OUT"
        threads = max(1, int(options.cpus_per_task))
        refs[remote.remote(shard.index, argv, shard.folder, job.cwd, job.progress_label, board, threads)] = shard
        shard.state, shard.error = RUNNING, ""
    manifest.save(path)
    line = ProgressLine(out, len(manifest.shards), manifest.count(DONE))
    waiting = list(refs)

    def stop() -> None:  # Ctrl-C, from the signal's watcher thread: ray.wait does not hand the loop back while tasks run
        interrupts.keep(f"{manifest.count(DONE)} of {len(manifest.shards)} shards kept in {path.parent}: the same command resumes")
        for ref in list(waiting):
            ray.cancel(ref, force=True)

    forget = interrupts.on_request(stop)
    try:
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=0.5)
            if interrupts.received():  # the running shards stay pending: the same command resumes them
                for ref in [*ready, *waiting]:
                    refs[ref].state = PENDING
                manifest.save(path)
                raise JobCancelled("interrupted")
            progress, attempts, nodes = ray.get(board.read.remote())
            for ref in ready:
                shard = refs[ref]
                shard.attempts, shard.node = attempts.get(shard.index, shard.attempts), nodes.get(shard.index, "")
                try:
                    result = ray.get(ref)
                    shard.state, shard.images = DONE, job.images(result)
                    shard.seconds, shard.work_seconds = float(result.get("seconds", 0.0)), round(job.work(result), 3)
                except Exception as exc:  # the task's own exception, or Ray's for a lost worker or node
                    shard.state, shard.error = FAILED, _one_line(exc)
                manifest.save(path)
            line.show(manifest, progress)
    finally:
        forget()
    line.close(manifest)


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}".strip()


class ProgressLine:
    """One live line for the whole job: shards done / running / failed, images done, images per second, time left."""

    def __init__(self, out: TextIO, shards: int, done_before: int) -> None:
        self.out, self.shards, self.start, self.last = out, shards, time.perf_counter(), 0.0
        self.live = is_terminal(out)
        self.done_before = done_before

    def show(self, manifest: Manifest, progress: dict[int, tuple[int, int]], final: bool = False) -> None:
        now = time.perf_counter()
        if not final and not self.live and now - self.last < PIPED_EVERY:
            return
        self.last = now
        done = sum(d for i, (d, _) in progress.items() if manifest.shards[i - 1].state != DONE)
        done += sum(s.images for s in manifest.shards if s.state == DONE)
        total = sum(t for i, (_, t) in progress.items())
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        finished, waiting = manifest.count(DONE) - self.done_before, manifest.count(RUNNING) + manifest.count(PENDING)
        if rate > 0 and total > done:  # from the images the running shards report
            left = f", ~{duration((total - done) / rate)} left"
        elif finished > 0 and waiting:  # jobs whose progress is not counted in images: from the shards finished
            left = f", ~{duration(elapsed / finished * waiting)} left"
        else:
            left = ""
        text = (
            f"[ray] shards {manifest.count(DONE)}/{self.shards} done, {manifest.count(RUNNING)} running, {manifest.count(FAILED)} failed"
            f" · {done} images · {rate:.2f}/s{left}"
        )
        write_line(self.out, text, self.live, final)

    def close(self, manifest: Manifest) -> None:
        self.show(manifest, {}, final=True)
