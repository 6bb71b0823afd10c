"""Splitting a view list over several machines or processes: which views shard I of N takes.

Shard I of N (written "I/N", I counted from 1) takes the views whose global
index i has i mod N = I − 1, so every shard gets a spread of objects and poses
and the shards together hold each view exactly once.
"""

from __future__ import annotations

from .errors import BadInput


def parse_shard(text: str) -> tuple[int, int]:
    """ "I/N" (1 ≤ I ≤ N) → (0-based shard index, shard count)."""
    parts = str(text).strip().split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        number, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise BadInput(f"A shard is written I/N, e.g. 1/4 for the first of four, got {text!r}") from None
    if count < 1 or not 1 <= number <= count:
        raise BadInput(f"Shard {text!r}: I must be between 1 and N (N ≥ 1), e.g. 1/4 … 4/4")
    return number - 1, count


def format_shard(shard_index: int, shard_count: int) -> str:
    return f"{shard_index + 1}/{shard_count}"


def shard_indices(total: int, shard_index: int, shard_count: int) -> list[int]:
    """Global view indices in 0..total−1 that shard ``shard_index`` (0-based) of ``shard_count`` takes."""
    if total < 0 or shard_count < 1 or not 0 <= shard_index < shard_count:
        raise BadInput(f"Bad shard {shard_index} of {shard_count} for {total} views (index is 0-based)")
    return list(range(shard_index, total, shard_count))
