"""Object masks and their COCO forms: bbox, area and compressed RLE, without pycocotools.

COCO's compressed RLE: run lengths of the mask read column by column (Fortran
order), starting with a run of zeros (possibly empty); each run from the
fourth on is stored as its difference to the run two before, and every number
is written in 5-bit groups, least significant first, as characters 48 + group
(+ 32 when more groups follow; the top bit of the last group carries the sign).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadInput

ALPHA_THRESHOLD = 0.5


def mask_from_alpha(alpha: np.ndarray, threshold: float = ALPHA_THRESHOLD) -> np.ndarray:
    """Boolean H×W mask: alpha (float 0–1, or uint8/uint16 scaled to 0–1) above the threshold."""
    a = np.asarray(alpha)
    if a.dtype == np.uint8:
        a = a / 255.0
    elif a.dtype == np.uint16:
        a = a / 65535.0
    return np.asarray(a > threshold)


def bbox_from_mask(mask: np.ndarray) -> list[float]:
    """COCO [x, y, w, h] in continuous pixel coordinates: the union of the mask's pixel squares."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return [0.0, 0.0, 0.0, 0.0]
    r0, r1 = np.flatnonzero(rows)[[0, -1]]
    c0, c1 = np.flatnonzero(cols)[[0, -1]]
    return [float(c0), float(r0), float(c1 - c0 + 1), float(r1 - r0 + 1)]


def run_lengths(mask: np.ndarray) -> list[int]:
    """Column-major run lengths, first run counting zeros."""
    flat = np.asarray(mask, bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0] + counts if flat[0] else counts


def counts_to_string(counts: list[int]) -> str:
    chars = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            group = x & 0x1F
            x >>= 5  # arithmetic shift: negative numbers end at −1
            more = x != -1 if group & 0x10 else x != 0
            chars.append(chr(48 + (group | 0x20 if more else group)))
    return "".join(chars)


def string_to_counts(text: str) -> list[int]:
    counts: list[int] = []
    pos = 0
    while pos < len(text):
        x, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise BadInput("Truncated COCO RLE string")
            group = ord(text[pos]) - 48
            if not 0 <= group < 64:
                raise BadInput(f"Bad character {text[pos]!r} in a COCO RLE string")
            x |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                x -= 1 << shift  # sign-extend
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE {"size": [h, w], "counts": str} of an H×W mask."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise BadInput(f"A mask is H×W, got shape {m.shape}")
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts_to_string(run_lengths(m))}
