"""Where the cameras go: 3D-DST's viewpoint parameters and their sampling distributions.

A viewpoint is (azimuth θ, polar φ, in-plane ψ, distance d), angles in degrees:
θ from +X toward +Y, φ from +Z (elevation = 90 − φ), ψ the image's rotation
about the optical axis (see :mod:`engine.cameras` for its sign). The
distributions are the ones 3D-DST samples from; each parameter draws from its
own child of the seed, so changing one distribution leaves the others' draws
unchanged and a seed gives the same views on every machine.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .errors import BadInput


@dataclass(frozen=True)
class Viewpoint:
    azimuth: float  # degrees, from +X toward +Y
    polar: float  # degrees from +Z, in [0, 180]
    inplane: float = 0.0  # degrees, positive turns the image content counter-clockwise
    distance: float = 2.0  # camera to origin, normalized object units

    @property
    def elevation(self) -> float:
        return 90.0 - self.polar

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high)."""

    low: float
    high: float


@dataclass(frozen=True)
class TruncatedNormal:
    """Normal(mean, sd) conditioned on [low, high]."""

    mean: float
    sd: float
    low: float
    high: float


#: A parameter's distribution: a fixed value, a uniform range or a truncated normal.
Spread = float | Uniform | TruncatedNormal

AZIMUTH_FULL = Uniform(0.0, 360.0)
AZIMUTH_HALF = Uniform(0.0, 180.0)  # 3D-DST's choice for classes whose two sides look alike
POLAR_WIDE = TruncatedNormal(90.0, 30.0, 0.0, 180.0)
POLAR_HIGH = TruncatedNormal(60.0, 20.0, 0.0, 180.0)  # mostly from above


def distance_jitter(distance: float) -> TruncatedNormal:
    """3D-DST's distance distribution around a model's distance d: sd 0.5 on [d − 0.5, d + 1.5]."""
    return TruncatedNormal(distance, 0.5, distance - 0.5, distance + 1.5)


@dataclass(frozen=True)
class ViewDistribution:
    distance: Spread
    azimuth: Spread = AZIMUTH_FULL
    polar: Spread = POLAR_WIDE
    inplane: Spread = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON form, recorded with the data set."""
        return {name: spread_dict(getattr(self, name)) for name in ("azimuth", "polar", "inplane", "distance")}


def spread_dict(spread: Spread) -> dict[str, Any]:
    if isinstance(spread, Uniform):
        return {"kind": "uniform", "low": spread.low, "high": spread.high}
    if isinstance(spread, TruncatedNormal):
        return {"kind": "truncated_normal", "mean": spread.mean, "sd": spread.sd, "low": spread.low, "high": spread.high}
    return {"kind": "fixed", "value": float(spread)}


def sample(spread: Spread, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` float64 draws from ``spread``."""
    if isinstance(spread, Uniform):
        if not spread.low < spread.high:
            raise BadInput(f"Uniform range [{spread.low}, {spread.high}) is empty")
        x = spread.low + (spread.high - spread.low) * rng.random(count)
        return np.minimum(x, np.nextafter(spread.high, spread.low))  # rounding never reaches high
    if isinstance(spread, TruncatedNormal):
        return truncated_normal(spread, count, rng)
    return np.full(count, float(spread))


def truncated_normal(spread: TruncatedNormal, count: int, rng: np.random.Generator) -> np.ndarray:
    """Inverse-CDF draws (one uniform per sample, so counts never depend on luck)."""
    mean, sd, low, high = (float(v) for v in (spread.mean, spread.sd, spread.low, spread.high))
    if not low <= high or sd < 0 or not all(map(math.isfinite, (mean, sd, low, high))):
        raise BadInput(f"Bad truncated normal: mean {mean}, sd {sd} on [{low}, {high}]")
    if sd == 0 or low == high:
        if not low <= mean <= high and low != high:
            raise BadInput(f"Truncated normal with sd 0 needs its mean {mean} inside [{low}, {high}]")
        return np.full(count, min(max(mean, low), high))
    za, zb = (low - mean) / sd, (high - mean) / sd
    flip = za > 0  # work in the lower tail, where small probabilities keep their precision
    if flip:
        za, zb = -zb, -za
    pa, pb = _norm_cdf(za), _norm_cdf(zb)
    if not pb > pa:
        raise BadInput(f"Truncated normal: [{low}, {high}] is too far from mean {mean} (sd {sd})")
    z = norm_ppf(pa + (pb - pa) * rng.random(count))
    if flip:
        z = -z
    return np.clip(mean + sd * z, low, high)


def _norm_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


# Acklam's rational approximation to the normal quantile (relative error < 1.2e-9), then one Halley step.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01, -1.328068155288572e01)
_C = (
    -7.784894002430293e-03,
    -3.223964580411365e-01,
    -2.400758277161838e00,
    -2.549732539343734e00,
    4.374664141464968e00,
    2.938163982698783e00,
)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
_P_LOW = 0.02425


def _poly(coeffs: Sequence[float], x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for c in coeffs:
        out = out * x + c
    return out


def norm_ppf(p: np.ndarray) -> np.ndarray:
    """Standard normal quantile for p in (0, 1), vectorised, without scipy."""
    p = np.clip(np.asarray(p, np.float64), 1e-300, 1 - 1e-16)
    x = np.empty_like(p)
    low, high = p < _P_LOW, p > 1 - _P_LOW
    mid = ~(low | high)
    q = np.sqrt(-2 * np.log(p[low]))
    x[low] = _poly(_C, q) / (_poly(_D, q) * q + 1)
    q = np.sqrt(-2 * np.log1p(-p[high]))
    x[high] = -_poly(_C, q) / (_poly(_D, q) * q + 1)
    q = p[mid] - 0.5
    r = q * q
    x[mid] = _poly(_A, r) * q / (_poly(_B, r) * r + 1)
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    e = 0.5 * erfc(-x / math.sqrt(2)) - p
    u = e * math.sqrt(2 * math.pi) * np.exp(x * x / 2)
    return x - u / (1 + x * u / 2)


def sample_viewpoints(count: int, distribution: ViewDistribution, seed: int) -> list[Viewpoint]:
    """``count`` viewpoints drawn from ``distribution``; the same seed gives the same list."""
    if count < 0:
        raise BadInput(f"Cannot sample {count} viewpoints")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(4)]
    values = [sample(getattr(distribution, name), count, rng) for name, rng in zip(("azimuth", "polar", "inplane", "distance"), streams)]
    views = [Viewpoint(float(a), float(p), float(i), float(d)) for a, p, i, d in zip(*values)]
    for view in views:
        check_viewpoint(view)
    return views


def check_viewpoint(view: Viewpoint) -> Viewpoint:
    values = (view.azimuth, view.polar, view.inplane, view.distance)
    if not all(math.isfinite(v) for v in values):
        raise BadInput(f"Viewpoint {values} is not finite")
    if not 0.0 <= view.polar <= 180.0:
        raise BadInput(f"Polar angle {view.polar}° is outside [0, 180] (elevation {view.elevation}°)")
    if view.distance <= 0:
        raise BadInput(f"Camera distance {view.distance} must be positive")
    return view


def viewpoint_from_dict(item: Mapping[str, Any]) -> Viewpoint:
    """From {azimuth, polar | elevation, inplane?, distance}."""
    if ("polar" in item) == ("elevation" in item):
        raise BadInput(f"A viewpoint needs exactly one of polar and elevation, got {sorted(item)}")
    unknown = set(item) - {"azimuth", "polar", "elevation", "inplane", "distance"}
    if unknown or "azimuth" not in item or "distance" not in item:
        raise BadInput(f"A viewpoint is {{azimuth, polar or elevation, inplane, distance}}, got {sorted(item)}")
    polar = float(item["polar"]) if "polar" in item else 90.0 - float(item["elevation"])
    return check_viewpoint(Viewpoint(float(item["azimuth"]), polar, float(item.get("inplane", 0.0)), float(item["distance"])))


def viewpoints_from_list(items: Iterable[Viewpoint | Mapping[str, Any] | Sequence[float]]) -> list[Viewpoint]:
    """An explicit list: Viewpoints, dicts, or (azimuth, polar, inplane, distance) tuples."""
    out = []
    for item in items:
        if isinstance(item, Viewpoint):
            out.append(check_viewpoint(item))
        elif isinstance(item, Mapping):
            out.append(viewpoint_from_dict(item))
        else:
            values = [float(v) for v in item]
            if len(values) != 4:
                raise BadInput(f"A viewpoint tuple is (azimuth, polar, inplane, distance), got {values}")
            out.append(check_viewpoint(Viewpoint(*values)))
    return out


def parse_viewpoints(text: str) -> list[Viewpoint]:
    """'azimuth polar in-plane distance; …' (degrees; commas or spaces between the numbers)."""
    items = [part.split() for part in text.replace(",", " ").split(";") if part.strip()]
    try:
        return viewpoints_from_list([[float(x) for x in item] for item in items])
    except ValueError as exc:
        raise BadInput(f"{exc} (expected 'azimuth polar in-plane distance; …')") from None
    except BadInput as exc:
        raise BadInput(f"{exc} (expected 'azimuth polar in-plane distance; …')") from None
