"""A prompt file for batches of panoramas: one prompt per line, each with its own seed and folder, so any line can be made alone.

Blank lines and lines starting with ``#`` are skipped; the others are numbered
1, 2, … in order. Prompt *n* is made with seed ``base + n − 1`` into
``prompt-NNNN/``, whichever machine or shard makes it, so a run of all lines,
of ``--lines 7`` alone and of shard 2/4 give prompt 7 the same bytes. Shard
I/N takes prompts I, I + N, I + 2N, … (long lists spread evenly).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..params import INPUT_FILE, OUTPUT_FOLDER, Note, param, refuse
from ..shards import parse_shard


@dataclass(frozen=True)
class Prompt:
    number: int  # 1-based among the file's prompts
    text: str
    seed: int

    @property
    def folder(self) -> str:
        return f"prompt-{self.number:04d}"


def read_prompts(path: Path, base_seed: int = 0) -> list[Prompt]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"Cannot read the prompt file {path}: {exc}") from None
    texts = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not texts:
        raise BadInput(f"{path} holds no prompts (one per line; # starts a comment)")
    return [Prompt(n, text, base_seed + n - 1) for n, text in enumerate(texts, start=1)]


def parse_numbers(text: str) -> set[int]:
    """ "1,5-9" → {1, 5, 6, 7, 8, 9}."""
    numbers: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise BadInput(f"Lines are numbers and ranges such as 1,5-9, got {text!r}") from None
        if low < 1 or high < low:
            raise BadInput(f"Lines count from 1 and ranges go up, got {part!r}")
        numbers.update(range(low, high + 1))
    return numbers


def select(prompts: list[Prompt], shard: str = "", lines: str = "") -> list[Prompt]:
    """The prompts one run makes: the chosen lines (all by default), then this shard's share of them."""
    chosen = prompts
    if lines:
        wanted = parse_numbers(lines)
        beyond = sorted(wanted - {p.number for p in prompts})
        if beyond:
            raise BadInput(f"The file has {len(prompts)} prompts; there is no line {beyond[0]}")
        chosen = [p for p in prompts if p.number in wanted]
    if shard:
        index, count = parse_shard(shard)
        chosen = [p for p in chosen if (p.number - 1) % count == index]
    return chosen


@dataclass
class PanoramasRequest:
    """``batch.py panoramas``: one LDM3D panorama per line of a prompt file (the generation's settings are an RGBDRequest)."""

    prompts: str = param(
        "", "Prompts", "A text file, one prompt per line (blank lines and # comments skipped)", path=INPUT_FILE, cli_required=True
    )
    lines: str = param("", "Lines", "Only these prompts, e.g. 7 or 1,5-9: prompt n has seed --seed + n − 1 in every run")
    save_blend: bool = param(False, "Save Blend", "Also build each world sphere and save it as prompt-NNNN/world.blend")
    shard: str = param("", "Shard", "I/N: this machine's share of the prompts (I, I + N, …)")
    out_dir: str = param(
        "",
        "Output Folder",
        "The folder for the prompt-NNNN folders (prompts already made there are skipped)",
        path=OUTPUT_FOLDER,
        cli="--out",
        cli_required=True,
    )

    def check(self) -> list[Note]:
        try:
            parse_shard(self.shard) if self.shard else None
        except BadInput as exc:
            refuse("shard", str(exc))
        if self.prompts and Path(self.prompts).is_file():
            try:
                select(read_prompts(Path(self.prompts)), self.shard, self.lines)
            except BadInput as exc:
                refuse("lines" if self.lines else "prompts", str(exc))
        return []
