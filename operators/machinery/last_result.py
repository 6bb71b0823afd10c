"""The last job's result as the panels show it: its output folder (*Open Output Folder*) and an image of it (the
thumbnail), read from what the job's ``finish`` returned for ``batch.py`` (its ``paths``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Files a thumbnail is made from, best first (an EXR is read too, but a PNG or JPEG shows the colour as saved).
THUMBNAIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".exr")


@dataclass
class LastResult:
    operator: str = ""  # the idname of the operator that made it
    folder: str = ""  # where its files are
    image: str = ""  # the file its thumbnail shows; "" when it wrote no image

    def of(self, *operators: str) -> bool:
        """Whether the last result came from one of ``operators`` (a panel shows only its own jobs' result)."""
        return bool(self.folder) and self.operator in operators


last = LastResult()


def _paths(found: Any) -> Iterator[str]:
    if isinstance(found, str):
        yield found
    elif isinstance(found, dict):
        for value in found.values():
            yield from _paths(value)
    elif isinstance(found, (list, tuple)):
        for value in found:
            yield from _paths(value)


def record(operator: str, summary: dict[str, Any]) -> None:
    """After a job that wrote files: remember where (their common folder) and which image to show."""
    files = [Path(p) for p in _paths(summary.get("paths")) if p]
    if not files:
        return
    folders = [str(p if p.is_dir() else p.parent) for p in files]
    folder = os.path.commonpath(folders) if len({Path(f).anchor for f in folders}) == 1 else folders[0]
    images = [p for p in files if p.suffix.lower() in THUMBNAIL_SUFFIXES and p.is_file()]
    images.sort(key=lambda p: THUMBNAIL_SUFFIXES.index(p.suffix.lower()))
    last.operator, last.folder, last.image = operator, folder, str(images[0]) if images else ""
