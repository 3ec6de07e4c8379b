"""Bjontegaard deltas (VCEG-M33) with PCHIP interpolation, over the overlapping range only.

BD-rate: average difference of log-rate at equal quality, as a percentage: -20 means the test codec needs
20 % fewer bits than the anchor for the same PSNR. It interpolates log(rate) as a function of PSNR with a
piecewise cubic Hermite interpolant (PCHIP, monotone and overshoot-free, as in the JVET/AOM tools that
replaced Bjontegaard's original cubic fit) through each curve's points, and integrates both over the PSNR
interval the two curves share. BD-PSNR is the mirror: PSNR as a function of log-rate, averaged over the
shared log-rate interval, in dB (positive = test is better).

Nothing is extrapolated: when the two ranges do not overlap the functions return (None, reason). Two points
per curve are enough (PCHIP is then linear); Bjontegaard's usual four are better.

Any monotone quality measure works as the "psnr" axis, e.g. MS-SSIM in dB (:func:`ms_ssim_db`).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


class BDResult(NamedTuple):
    value: float | None  # percent for BD-rate, dB for BD-PSNR; None when it cannot be computed
    reason: str | None  # why value is None (e.g. the quality ranges do not overlap); None otherwise


def ms_ssim_db(values: Sequence[float]) -> list[float]:
    """-10 log10(1 - MS-SSIM): the usual way to put MS-SSIM on a dB-like axis before a BD computation."""
    return [-10.0 * math.log10(max(1.0 - v, 1e-12)) for v in values]


def pareto_front(rates: Sequence[float], qualities: Sequence[float]) -> list[int]:
    """Indices of the operational points: those no other point beats with a lower or equal rate.

    A codec on a noisy source, measured against the clean clip, gets *worse* past some rate (the bits go to
    reproducing noise). Nobody would pick such a point, and log-rate is then not a function of quality, so
    BD metrics on such curves use the front. For a curve that rises with rate the front is all its points.
    """
    order = sorted(range(len(rates)), key=lambda i: (rates[i], -qualities[i]))
    front, best = [], -math.inf
    for i in order:
        if qualities[i] > best:
            front.append(i)
            best = qualities[i]
    return sorted(front, key=lambda i: rates[i])


def _curve(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray] | str:
    """Sort by x; for equal x keep the best y (lowest when y is a rate). Returns an error string if unusable."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        return f"{what}: rate and quality lists differ in length"
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return f"{what}: non-finite values"
    if len(x) == 0:
        return f"{what}: no points"
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    keep = np.concatenate([[True], np.diff(x) > 0])  # first of each equal-x group (smallest y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return f"{what}: needs at least 2 points with distinct quality, has {len(x)}"
    return x, y


def _bd(xa, ya, xt, yt, what_x: str) -> tuple[float | None, str | None]:
    """Mean of (test - anchor) of y(x) over the common x range."""
    a, t = _curve(xa, ya, "anchor"), _curve(xt, yt, "test")
    for c in (a, t):
        if isinstance(c, str):
            return None, c
    (xa, ya), (xt, yt) = a, t
    shared = common_range(xa, xt)
    if shared is None:
        return None, (
            f"no overlap: anchor {what_x} {xa[0]:.4g}..{xa[-1]:.4g}, test {what_x} {xt[0]:.4g}..{xt[-1]:.4g}"
        )
    lo, hi = shared
    ia = PchipInterpolator(xa, ya).integrate(lo, hi)
    it = PchipInterpolator(xt, yt).integrate(lo, hi)
    return float((it - ia) / (hi - lo)), None


def common_range(anchor: Sequence[float], test: Sequence[float]) -> tuple[float, float] | None:
    """The interval both curves span on one axis (quality for a BD-rate, log-rate for BD-PSNR), or None.

    The BD integrals run over it; worth printing beside a BD-rate, because over a narrow shared quality
    interval the figure speaks for that interval only.
    """
    if len(anchor) == 0 or len(test) == 0:
        return None
    lo, hi = max(min(anchor), min(test)), min(max(anchor), max(test))
    return (float(lo), float(hi)) if hi > lo else None


def _check_rates(*rates: Sequence[float]) -> str | None:
    for r in rates:
        if any(not (v > 0) for v in r):
            return "rates must be positive"
    return None


def bd_rate(
    anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float], test_psnr: Sequence[float]
) -> BDResult:
    """Bjontegaard delta rate of test vs anchor in percent (negative = test saves bits)."""
    bad = _check_rates(anchor_rate, test_rate)
    if bad:
        return BDResult(None, bad)
    diff, reason = _bd(anchor_psnr, np.log(anchor_rate), test_psnr, np.log(test_rate), "quality")
    if diff is None:
        return BDResult(None, reason)
    return BDResult((math.exp(diff) - 1.0) * 100.0, None)


def bd_psnr(
    anchor_rate: Sequence[float], anchor_psnr: Sequence[float], test_rate: Sequence[float], test_psnr: Sequence[float]
) -> BDResult:
    """Bjontegaard delta PSNR of test vs anchor in dB (positive = test has higher quality at equal rate)."""
    bad = _check_rates(anchor_rate, test_rate)
    if bad:
        return BDResult(None, bad)
    diff, reason = _bd(np.log(anchor_rate), anchor_psnr, np.log(test_rate), test_psnr, "log-rate")
    if diff is None and reason and reason.startswith("no overlap"):
        reason = (
            f"no overlap: anchor bpp {min(anchor_rate):.4g}..{max(anchor_rate):.4g}, "
            f"test bpp {min(test_rate):.4g}..{max(test_rate):.4g}"
        )
    return BDResult(diff, reason)
