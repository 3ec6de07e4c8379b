"""The probability models of quantized values: one definition for the range coder and for training.

The coder (``entropy.py``, numpy) and the rate-distortion fit (``rd.py``, torch) both ask the same question:
what mass does a Laplace or Gaussian (mean, scale) give the interval [a, b]? :func:`bin_mass` answers it
for numpy arrays and torch tensors alike, with the same formulas, so the rate the fit minimizes is the
rate the coder will spend (up to the coder's choice of a cheaper model, which only lowers it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtr as _np_ndtr

LOG2_FLOOR = 2.0**-24  # probabilities are floored here before a log (constriction's 24-bit precision)
_LN2 = float(np.log(2.0))


def _ops(x: Any) -> tuple[Any, Any]:
    """(array namespace, normal CDF) for numpy arrays or torch tensors."""
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np, _np_ndtr
    import torch

    return torch, torch.special.ndtr


def bin_mass(model: str, a: Any, b: Any, mean: Any, scale: Any) -> Any:
    """P(a < X < b) per element, for X ~ Laplace(mean, scale) or N(mean, scale^2); stable in the tails.

    Works on numpy arrays (the coder) and torch tensors (the differentiable rate); infinite bounds give the
    tails. Each bin is computed on the side of the mean it lies on, so no 1 - 1 cancellation occurs.
    """
    xp, ndtr = _ops(a)
    if model == "gaussian":
        za, zb = (a - mean) / scale, (b - mean) / scale
        upper = za > 0
        return xp.where(upper, ndtr(-za) - ndtr(-zb), ndtr(zb) - ndtr(za))
    if model != "laplace":
        raise ValueError(f"no bin mass for model {model!r}")

    def tail(t: Any) -> Any:
        return 0.5 * xp.exp(-xp.abs(t - mean) / scale)

    def cdf(t: Any) -> Any:
        return xp.where(t < mean, tail(t), 1.0 - tail(t))

    def sf(t: Any) -> Any:
        return xp.where(t < mean, 1.0 - tail(t), tail(t))

    return xp.where(a >= mean, sf(a) - sf(b), cdf(b) - cdf(a))


def laplace_bits(y: Any, mean: Any, scale: Any) -> Any:
    """-log2 of the mass a Laplace(mean, scale) gives the unit bin around each y (y in quantization steps).

    The mass of :func:`bin_mass` over [y - 1/2, y + 1/2] in closed form, with d = |y - mean| and b = scale:
    exp(-d/b) * sinh(1/(2b)) for a bin on one side of the mean, 1 - exp(-1/(2b)) * cosh(d/b) for the bin
    holding it. Its log needs no exp for the outer bins, so it is cheap and exact in the tails.
    Differentiable in y, mean and scale for torch tensors: the rate term of the rate-distortion fit.
    """
    xp, _ = _ops(y)
    d = xp.abs(y - mean)
    half = 0.5 / scale
    outer = d / (scale * _LN2) - xp.log2(xp.sinh(half))
    inner_d = xp.minimum(d, 0.5) if xp is np else d.clamp_max(0.5)  # keeps cosh finite where outer applies
    inner_mass = 1.0 - xp.exp(-half) * xp.cosh(inner_d / scale)
    inner = -xp.log2(xp.maximum(inner_mass, LOG2_FLOOR) if xp is np else inner_mass.clamp_min(LOG2_FLOOR))
    bits = xp.where(d >= 0.5, outer, inner)
    return xp.minimum(bits, -np.log2(LOG2_FLOOR)) if xp is np else bits.clamp_max(-np.log2(LOG2_FLOOR))


def laplace_fit(y: Any, dims: tuple[int, ...], min_scale: float) -> tuple[Any, Any]:
    """Per-group (mean, scale) of a Laplace by its moments: the centre and mean absolute deviation.

    ``dims`` are the dimensions reduced (all but the group axis). The centre is the mean (the coder uses
    the median; on these bell-shaped tensors the two agree to a fraction of a step).
    """
    xp, _ = _ops(y)
    if xp is np:
        mean = y.mean(axis=dims, keepdims=True)
        return mean, np.maximum(np.abs(y - mean).mean(axis=dims, keepdims=True), min_scale)
    mean = y.mean(dim=dims, keepdim=True)
    return mean, (y - mean).abs().mean(dim=dims, keepdim=True).clamp_min(min_scale)

