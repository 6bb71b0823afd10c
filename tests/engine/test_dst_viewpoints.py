"""3D-DST viewpoint sampling: reproducible, inside its ranges, with the intended distribution."""

import math

import numpy as np
import pytest

from engine.errors import BadInput
from engine.viewpoints import (
    AZIMUTH_FULL,
    AZIMUTH_HALF,
    POLAR_HIGH,
    POLAR_WIDE,
    TruncatedNormal,
    Uniform,
    ViewDistribution,
    Viewpoint,
    distance_jitter,
    norm_ppf,
    sample,
    sample_viewpoints,
    viewpoints_from_list,
)


def phi(z):
    return 0.5 * math.erfc(-z / math.sqrt(2))


def truncated_cdf(x, s: TruncatedNormal):
    a, b = phi((s.low - s.mean) / s.sd), phi((s.high - s.mean) / s.sd)
    return (np.vectorize(phi)((np.asarray(x) - s.mean) / s.sd) - a) / (b - a)


def truncated_moments(s: TruncatedNormal):
    a, b = (s.low - s.mean) / s.sd, (s.high - s.mean) / s.sd
    pdf = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    z = phi(b) - phi(a)
    mean = s.mean + s.sd * (pdf(a) - pdf(b)) / z
    var = s.sd**2 * (1 + (a * pdf(a) - b * pdf(b)) / z - ((pdf(a) - pdf(b)) / z) ** 2)
    return mean, var


def test_same_seed_same_views_and_parameters_draw_independently():
    dist = ViewDistribution(distance=distance_jitter(2.0), polar=POLAR_HIGH, inplane=Uniform(-10, 10))
    a, b = sample_viewpoints(50, dist, seed=7), sample_viewpoints(50, dist, seed=7)
    assert a == b and sample_viewpoints(50, dist, seed=8) != a
    assert sample_viewpoints(20, dist, seed=7) == a[:20]  # a prefix does not depend on the count
    fixed_roll = sample_viewpoints(50, ViewDistribution(distance=distance_jitter(2.0), polar=POLAR_HIGH), seed=7)
    assert [v.azimuth for v in fixed_roll] == [v.azimuth for v in a] and [v.polar for v in fixed_roll] == [v.polar for v in a]
    assert all(v.inplane == 0 for v in fixed_roll)


@pytest.mark.parametrize(
    "spread", [POLAR_WIDE, POLAR_HIGH, TruncatedNormal(60, 20, 150, 180), TruncatedNormal(0, 1, -1, 0.5), distance_jitter(3.0)]
)
def test_truncated_normal_stays_in_range_and_has_the_right_distribution(spread):
    n = 20000
    x = sample(spread, n, np.random.default_rng(11))
    assert x.min() >= spread.low and x.max() <= spread.high
    mean, var = truncated_moments(spread)
    assert abs(x.mean() - mean) < 4 * math.sqrt(var / n)
    xs = np.sort(x)
    ks = np.max(np.abs(truncated_cdf(xs, spread) - np.arange(1, n + 1) / n))
    assert ks < 1.63 / math.sqrt(n) + 1e-3  # Kolmogorov–Smirnov at 1 %


def test_uniform_azimuth_ranges():
    x = sample(AZIMUTH_FULL, 20000, np.random.default_rng(1))
    assert x.min() >= 0 and x.max() < 360 and abs(x.mean() - 180) < 4 * 360 / math.sqrt(12 * 20000)
    assert sample(AZIMUTH_HALF, 1000, np.random.default_rng(2)).max() < 180
    assert np.array_equal(sample(2.5, 3, np.random.default_rng(0)), [2.5, 2.5, 2.5])


def test_sampled_views_are_valid_and_presets_are_3d_dst():
    views = sample_viewpoints(500, ViewDistribution(distance=distance_jitter(2.0)), seed=0)
    assert all(0 <= v.polar <= 180 and 1.5 <= v.distance <= 3.5 and v.inplane == 0 for v in views)
    assert (POLAR_WIDE.mean, POLAR_WIDE.sd, POLAR_WIDE.low, POLAR_WIDE.high) == (90, 30, 0, 180)
    assert (POLAR_HIGH.mean, POLAR_HIGH.sd) == (60, 20)
    assert distance_jitter(2.0) == TruncatedNormal(2.0, 0.5, 1.5, 3.5)
    record = ViewDistribution(distance=2.0).as_dict()
    assert record["distance"] == {"kind": "fixed", "value": 2.0} and record["azimuth"]["kind"] == "uniform"


def test_normal_quantile_inverts_the_cdf():
    p = np.concatenate([np.logspace(-300, -2, 60), np.linspace(0.01, 0.99, 99), 1 - np.logspace(-12, -2, 20)])
    z = norm_ppf(p)
    back = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in z])
    assert np.all(np.abs(back - p) <= 1e-12 * np.maximum(p, 1e-3))


def test_explicit_viewpoints():
    views = viewpoints_from_list([Viewpoint(1, 2, 3, 4), {"azimuth": 10, "elevation": 30, "distance": 2}, (5, 60, 0, 3)])
    assert views == [Viewpoint(1, 2, 3, 4), Viewpoint(10, 60, 0, 2), Viewpoint(5, 60, 0, 3)]
    assert views[1].elevation == 30
    for bad in (
        {"azimuth": 0, "polar": 10, "elevation": 80, "distance": 2},
        {"azimuth": 0, "polar": 200, "distance": 2},
        {"azimuth": 0, "polar": 20, "distance": 0},
        (1, 2, 3),
        {"azimuth": 0, "polar": 9, "distance": 2, "roll": 1},
    ):
        with pytest.raises(BadInput):
            viewpoints_from_list([bad])


def test_bad_distributions_are_refused():
    rng = np.random.default_rng(0)
    for bad in (Uniform(5, 5), TruncatedNormal(0, -1, 0, 1), TruncatedNormal(0, 1, 2, 1), TruncatedNormal(0, 1, 60, 70)):
        with pytest.raises(BadInput):
            sample(bad, 3, rng)
    with pytest.raises(BadInput):
        sample_viewpoints(3, ViewDistribution(distance=-1.0), seed=0)
