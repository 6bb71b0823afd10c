import numpy as np
import pytest

from engine.errors import BadInput
from engine.world import depth


def test_metric_depth_passes_through():
    d = np.full((4, 8), 2.5, np.float32)
    np.testing.assert_array_equal(depth.distances(d, depth.METRIC), d)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.nan, "NaN"),
        (np.inf, "infinite"),
        (-1.0, "zero or negative"),
        (0.0, "zero or negative"),
    ],
)
def test_metric_depth_rejects_bad_values_with_a_reason(bad, words):
    d = np.ones((4, 8), np.float32)
    d[1, 2] = bad
    with pytest.raises(BadInput, match=words):
        depth.distances(d, depth.METRIC)


def test_all_zero_depth_is_rejected_in_both_modes():
    for mode in (depth.METRIC, depth.RELATIVE):
        with pytest.raises(BadInput, match="all zero"):
            depth.distances(np.zeros((4, 8), np.float32), mode)


def test_offset_rule_half_keeps_radius_one_nearer_zero_farther():
    v = np.array([[0.0, 0.5, 1.0]], np.float32)
    d = depth.relative_distances(v, depth.OFFSET, radius=4.0, strength=1.0)
    assert d[0, 1] == pytest.approx(4.0)
    assert d[0, 2] < 4.0 < d[0, 0]
    np.testing.assert_allclose(d[0], [6.0, 4.0, 2.0])
    flat = depth.relative_distances(v, depth.OFFSET, radius=4.0, strength=0.0)
    np.testing.assert_allclose(flat, 4.0)  # strength 0: a plain sphere


def test_inverse_mapping_undoes_the_16_bit_encoding():
    rng = np.random.default_rng(1)
    d = rng.uniform(0.7, 12.0, (16, 32)).astype(np.float32)
    near, far = float(d.min()), float(d.max())
    encoded = depth.encode_inverse_depth(d, near, far)
    assert encoded.dtype == np.uint16
    assert encoded.max() == 65535 and encoded.min() == 0  # near = bright
    back = depth.relative_distances(encoded / 65535.0, depth.INVERSE, near=near, far=far)
    np.testing.assert_allclose(back, d, rtol=2e-3)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mapping": depth.OFFSET, "strength": 2.5}, "strength"),
        ({"mapping": depth.OFFSET, "radius": 0.0}, "radius"),
        ({"mapping": depth.INVERSE, "near": 5.0, "far": 1.0}, "near < far"),
        ({"mapping": "SIDEWAYS"}, "Unknown relative"),
    ],
)
def test_relative_parameters_are_checked(kwargs, words):
    with pytest.raises(BadInput, match=words):
        depth.relative_distances(np.full((2, 4), 0.5, np.float32), **kwargs)


def test_relative_values_outside_unit_range_suggest_metric_mode():
    with pytest.raises(BadInput, match="METRIC"):
        depth.distances(np.full((2, 4), 3.0, np.float32), depth.RELATIVE)


def test_unknown_mode_and_bad_shapes():
    with pytest.raises(BadInput, match="Unknown depth mode"):
        depth.distances(np.ones((2, 4)), "SIDEWAYS")
    with pytest.raises(BadInput, match="single-channel"):
        depth.distances(np.ones(8), depth.METRIC)
