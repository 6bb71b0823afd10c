"""What every model job shares around its model: the sampling settings it checks, and where and how its samples are written.

One sample (or object set) writes its files straight into the output folder;
several go to ``sample-1``, ``sample-2``, …. Writes are all-or-nothing
(:class:`~engine.imagefiles.NewFiles`): nothing existing is replaced unless
allowed, and folders made for a failed write are removed again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BadInput
from .imagefiles import NewFiles, write_png

Writer = Callable[[Path], object]


def check_sampling(steps: int, count: int, max_count: int, guidance: float, seed: int) -> None:
    """The settings every sampler takes, checked before any model work."""
    if steps < 1:
        raise BadInput(f"Steps must be at least 1, got {steps}")
    if not 1 <= count <= max_count:
        raise BadInput(f"Count must be from 1 to {max_count}, got {count}")
    if not np.isfinite(guidance) or guidance < 0:
        raise BadInput(f"Guidance must be a number ≥ 0, got {guidance}")
    if not 0 <= seed < 2**63:
        raise BadInput(f"Seed must be from 0 to 2^63 - 1, got {seed}")


def sample_dirs(out_dir: Path, count: int) -> list[Path]:
    """One sample: the files go straight into ``out_dir``; several: ``sample-1``, ``sample-2``, …"""
    return [out_dir] if count == 1 else [out_dir / f"sample-{i + 1}" for i in range(count)]


def planned(out_dir: Path, count: int, names: tuple[str, ...], overwrite: bool) -> list[Path]:
    """Every file the samples will write; refuses existing ones now (unless ``overwrite``), before any model work."""
    targets = [folder / name for folder in sample_dirs(out_dir, count) for name in names]
    NewFiles(targets, overwrite)
    return targets


def write_samples(out_dir: Path, writers: list[dict[str, Writer]], overwrite: bool) -> list[dict[str, str]]:
    """Each sample's files (name → how it is written; a name may hold subfolders), all-or-nothing.

    Returns each sample's name → path. Folders made here are removed again if anything fails.
    """
    folders = sample_dirs(out_dir, len(writers))
    targets = [folder / name for folder, files in zip(folders, writers) for name in files]
    missing = {d for t in targets for d in [t.parent, *t.parent.parents] if not d.exists()}
    made = sorted(missing, key=lambda d: len(d.parts))  # outermost first: made in this order, removed in reverse
    try:
        with NewFiles(targets, overwrite) as staged:
            for folder in made:
                folder.mkdir(exist_ok=True)
            for target, write in zip(targets, (w for files in writers for w in files.values())):
                staged.write(target, write)
    except BaseException:
        for folder in reversed(made):  # leave no empty folders behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    return [{name: str(folder / name) for name in files} for folder, files in zip(folders, writers)]


def png(pixels: np.ndarray) -> Writer:
    """Float pixels in [0, 1] as an 8-bit PNG; integer pixels as stored."""
    if pixels.dtype.kind == "f":
        pixels = np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8)
    return lambda path: write_png(path, pixels)


def json_file(value: Any) -> Writer:
    return lambda path: path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
