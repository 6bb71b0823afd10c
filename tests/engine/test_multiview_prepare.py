"""Preparing the multi-view models' input image: cut out, centred at 80% of a white square, or only resized."""

import numpy as np
import pytest

from engine.errors import BadInput
from engine.multiview.prepare import FILL, prepare


def rgba_object(height=200, width=300, box=(40, 100, 60, 200), colour=(0.9, 0.1, 0.2)):
    """A transparent image with one opaque coloured rectangle (top, bottom, left, right)."""
    image = np.zeros((height, width, 4), np.float32)
    top, bottom, left, right = box
    image[top:bottom, left:right] = (*colour, 1.0)
    return image


def box_of(mask):
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def test_an_object_with_alpha_is_centred_to_fill_80_percent_of_a_white_square():
    out = prepare(rgba_object(), size=256)
    assert out.rgb.shape == (256, 256, 3) and out.rgb.dtype == np.float32 and out.mask.shape == (256, 256)
    top, bottom, left, right = box_of(out.mask)
    assert abs((right - left) - FILL * 256) <= 2, "the longer side (width 140) fills 80%"
    assert abs((top + bottom) / 2 - 128) <= 1 and abs((left + right) / 2 - 128) <= 1, "centred"
    assert np.allclose(out.rgb[0, 0], 1.0) and np.allclose(out.rgb[-1, -1], 1.0), "white background"
    np.testing.assert_allclose(out.rgb[128, 128], (0.9, 0.1, 0.2), atol=1e-3)
    assert out.how.startswith("auto")


def test_a_uniform_background_without_alpha_is_cut_away_like_alpha():
    rgba = rgba_object()
    grey = np.where(rgba[..., 3:] > 0, rgba[..., :3], np.float32(0.5))
    by_colour, by_alpha = prepare((grey * 255).round().astype(np.uint8)), prepare(rgba)
    assert "border" in by_colour.how
    assert box_of(by_colour.mask) == box_of(by_alpha.mask)
    np.testing.assert_allclose(by_colour.rgb, by_alpha.rgb, atol=1 / 255 + 1e-6)


def test_none_only_composites_on_white_and_resizes():
    rgba = rgba_object(256, 256)
    out = prepare(rgba, size=128, preparation="NONE")
    assert box_of(out.mask) == (20, 50, 30, 100)
    assert np.allclose(out.rgb[0, 0], 1.0)


def test_preparation_is_deterministic():
    a, b = prepare(rgba_object()), prepare(rgba_object())
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.mask, b.mask)


@pytest.mark.parametrize(
    "pixels, message",
    [
        (np.zeros((200, 200, 4), np.float32), "all transparent"),
        (np.ones((200, 200, 4), np.float32), "all object"),
        (np.random.default_rng(0).random((200, 200, 3)).astype(np.float32), "no transparency and no uniform background"),
        (rgba_object(40, 300, (5, 30, 10, 50)), "at least 64 pixels"),
        (np.zeros((200, 200), np.float32), "RGB or RGBA"),
        (np.full((200, 200, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_are_refused_with_a_reason(pixels, message):
    with pytest.raises(BadInput, match=message):
        prepare(pixels)


def test_an_unknown_preparation_is_refused_by_name():
    with pytest.raises(BadInput, match="Unknown image preparation 'CROP'"):
        prepare(rgba_object(), preparation="CROP")
