"""The shard manifest: every shard of one job with its seeds and state, kept beside the shard folders so a run can resume.

``NAME.shards/manifest.json`` names the job and the request every shard
shares (its parameters, without the shard and its folder); a second run of the
same request reads it and skips what is done. Another request for the same
output is refused rather than mixed in. Written
atomically (a temporary file, then a rename), only by the driver.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput

FORMAT = "diffusion3d-shards/2"
MANIFEST = "manifest.json"
PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
MERGED = "merged"  # in the merged set; its own folder is gone


@dataclass
class Shard:
    index: int  # 1-based, as --shard I/N
    folder: str  # where the finished shard lies
    seeds: dict[str, Any] = field(default_factory=dict)  # what makes it reproducible alone
    state: str = PENDING
    attempts: int = 0
    error: str = ""  # the last failure, one line
    images: int = 0
    seconds: float = 0.0  # the task's wall time
    work_seconds: float = 0.0  # of which the job itself (rendering, models); the rest is process start, imports, I/O
    node: str = ""


@dataclass
class Manifest:
    job: str  # the subcommand
    parameters: dict[str, Any]  # the request every shard shares (encoded; no shard or output folder)
    output: str  # the final data set, written only by the merge
    shards: list[Shard]
    merged: bool = False
    format: str = FORMAT

    def save(self, path: Path) -> None:
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
            if value.get("format") != FORMAT:
                raise ValueError(f"format {value.get('format')!r}")
            return cls(**{**value, "shards": [Shard(**s) for s in value["shards"]]})
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise BadInput(f"The shard manifest {path} is damaged ({exc}): remove its folder to start again") from None

    def count(self, state: str) -> int:
        return sum(s.state == state for s in self.shards)


def open_manifest(folder: Path, job: str, parameters: dict[str, Any], output: Path, shards: list[Shard]) -> Manifest:
    """The manifest of this job in ``folder``: a new one, or the one a previous run left (its shards that were running are pending again).

    A merged set's shards stay merged while the set is there; if it went, they are pending again.
    """
    path = folder / MANIFEST
    if not path.is_file():
        manifest = Manifest(job, parameters, str(output), shards)
        folder.mkdir(parents=True, exist_ok=True)
        manifest.save(path)
        return manifest
    manifest = Manifest.load(path)
    if (manifest.job, manifest.parameters, len(manifest.shards)) != (job, parameters, len(shards)):
        differ = sorted(_differences(manifest.parameters, parameters)) if manifest.job == job else [f"the job {manifest.job}"]
        raise BadInput(
            f"{folder} holds {len(manifest.shards)} shards of another command ({', '.join(differ) or 'another shard count'} differ): "
            "remove it, or write to another --out"
        )
    whole = manifest.merged and output.is_dir()
    manifest.merged = whole
    for shard in manifest.shards:
        if whole:
            shard.state = MERGED  # (a manifest written before this state said done)
        elif shard.state == FAILED:
            shard.state, shard.attempts = PENDING, 0  # a new run tries it again
        elif shard.state == RUNNING or not Path(shard.folder).is_dir():
            shard.state = PENDING  # its driver died, or its folder (or the set it was merged into) went
        elif shard.state == MERGED:
            shard.state = DONE  # its folder is still there, the set is not
    manifest.save(path)
    return manifest


def _differences(old: Any, new: Any, where: str = "") -> set[str]:
    """The parameters two encoded requests disagree on, by name."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {d for key in {*old, *new} for d in _differences(old.get(key), new.get(key), key)}
    return set() if old == new else {where or "the request"}
