"""Masks, COCO boxes and compressed RLE, checked against pycocotools (test-only reference)."""

from typing import Any

import numpy as np
import pycocotools.mask as coco_mask
import pytest

from engine.dst.masks import bbox_from_mask, mask_from_alpha, rle_encode, run_lengths, string_to_counts
from engine.errors import BadInput


# Decoding is the test's side: a data set only writes RLE.
def counts(rle: dict[str, Any]) -> list[int]:
    raw = rle["counts"]
    return list(raw) if isinstance(raw, list) else string_to_counts(raw.decode("ascii") if isinstance(raw, bytes) else raw)


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    """Boolean H×W mask from compressed (str/bytes counts) or uncompressed (list counts) RLE."""
    height, width = (int(v) for v in rle["size"])
    runs = counts(rle)
    if sum(runs) != height * width or any(c < 0 for c in runs):
        raise BadInput(f"RLE runs cover {sum(runs)} pixels, the {width}×{height} mask has {width * height}")
    return np.repeat(np.arange(len(runs)) % 2 == 1, runs).reshape((height, width), order="F")


def rle_area(rle: dict[str, Any]) -> int:
    return int(sum(counts(rle)[1::2]))


def reference(mask):
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))


def masks():
    rng = np.random.default_rng(5)
    yield np.zeros((1, 1), bool)
    yield np.ones((1, 1), bool)
    yield np.ones((7, 3), bool)
    yield np.zeros((300, 250), bool)
    big = np.zeros((512, 512), bool)
    big[40:470, 30:500] = True  # runs far longer than one 5-bit group, and negative differences
    big[100:120, 200:260] = False
    yield big
    for _ in range(60):
        h, w = rng.integers(1, 70, 2)
        yield rng.random((h, w)) < rng.random()
    for _ in range(20):
        h, w = rng.integers(20, 200, 2)
        yy, xx = np.mgrid[0:h, 0:w]
        cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, max(h, w))
        yield (yy - cy) ** 2 + (xx - cx) ** 2 < rad**2


def test_rle_equals_pycocotools_both_ways():
    for mask in masks():
        ours, ref = rle_encode(mask), reference(mask)
        assert ours["size"] == list(ref["size"]) and ours["counts"] == ref["counts"].decode("ascii")
        assert np.array_equal(coco_mask.decode(ours), mask)  # pycocotools reads ours
        assert np.array_equal(rle_decode(ref), mask) and np.array_equal(rle_decode(ours), mask)
        assert rle_area(ours) == int(coco_mask.area(ref)) == int(mask.sum())
        if mask.any():
            assert bbox_from_mask(mask) == [float(v) for v in coco_mask.toBbox(ref)]


def test_uncompressed_counts_and_run_lengths():
    mask = np.array([[0, 1], [1, 1], [0, 0]], bool)
    assert run_lengths(mask) == [1, 1, 1, 2, 1]  # column-major: 0 1 0 | 1 1 0, zeros first
    assert run_lengths(np.ones((2, 2), bool)) == [0, 4]
    assert np.array_equal(rle_decode({"size": [3, 2], "counts": [1, 1, 1, 2, 1]}), mask)
    assert string_to_counts(rle_encode(mask)["counts"]) == [1, 1, 1, 2, 1]


def test_bbox_of_empty_and_single_pixel():
    assert bbox_from_mask(np.zeros((4, 5), bool)) == [0.0, 0.0, 0.0, 0.0]
    m = np.zeros((4, 5), bool)
    m[2, 3] = True
    assert bbox_from_mask(m) == [3.0, 2.0, 1.0, 1.0]  # the pixel's square [3, 4) × [2, 3)


def test_mask_from_alpha_threshold():
    assert np.array_equal(mask_from_alpha(np.array([[0.0, 0.5, 0.5001, 1.0]])), [[False, False, True, True]])
    assert np.array_equal(mask_from_alpha(np.array([[127, 128]], np.uint8)), [[False, True]])


def test_bad_rle_is_refused():
    with pytest.raises(BadInput):
        rle_decode({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(BadInput):
        rle_decode({"size": [2, 2], "counts": "~~"})
    with pytest.raises(BadInput):
        rle_encode(np.zeros((2, 2, 2), bool))
