"""The probability models of quantized values: one definition for the range coder and for training.

The coder (``entropy.py``, numpy) and the rate-distortion fit (``rd.py``, torch) both ask the same question:
what mass does a Laplace or Gaussian (mean, scale) give the interval [a, b]? :func:`bin_mass` answers it
for numpy arrays and torch tensors alike, with the same formulas, so the rate the fit minimizes is the
rate the coder will spend (up to the coder's choice of a cheaper model, which only lowers it).

Each parametric model of format 4 is defined here twice, as one distribution over the alphabet [0, A):

- in float (:func:`pmf`, numpy), which the encoder uses to fit (mean, scale), and whose Laplace is
  :func:`bin_mass`, the rate of the rate-distortion fit;
- as integer frequencies summing to 2^24 (:func:`freq_table`), computed with :mod:`.fixedpoint` only, which
  the range coder uses on both sides: the same table on every machine (docs/bitstream.md, "Portability").

The integer table costs at most 2e-5 bit a symbol more than the float model beyond what the leaky floor
(every frequency >= 1) costs, and differs by under 0.6% wherever a probability is above 2^-12
(``tests/test_portable.py``).

- **laplace**: symbol v gets the mass of [v - 1/2, v + 1/2] under Laplace(mean, scale), renormalized over
  the alphabet (the tails beyond it are dropped, not folded into the edge symbols).
- **gaussian**: symbol v gets exp(-(v - mean)^2 / (2 scale^2)), renormalized over the alphabet: the
  density at the symbol rather than the mass of its bin, because the density needs only exp, which is
  computed exactly in integers, while the bin mass needs erf. Refitting the scale makes up for the
  difference (docs/data/portable-recode.txt: no file grew).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtr as _np_ndtr

from .fixedpoint import UNIT_BITS, X_BITS, exp_neg, f16_units, quantize_freqs, ratio

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


# ---------------------------------------------------------------------------------------------- format 4


def pmf(model: str, values: np.ndarray, mean: Any, scale: Any, alphabet: int) -> np.ndarray:
    """Float probabilities the format-4 model gives integer `values` in [0, alphabet) (numpy, broadcasting).

    The twin of :func:`freq_table` for fitting: the encoder scores parameters with it; the coder uses the
    integer table.
    """
    values = np.asarray(values, np.float64)
    if model == "laplace":
        inside = bin_mass("laplace", -0.5, alphabet - 0.5, mean, scale)
        return bin_mass("laplace", values - 0.5, values + 0.5, mean, scale) / inside
    if model != "gaussian":
        raise ValueError(f"no pmf for model {model!r}")
    support = np.arange(alphabet, dtype=np.float64)
    mean, scale = np.asarray(mean, np.float64), np.asarray(scale, np.float64)
    norm = np.exp(-0.5 * ((support - mean[..., None]) / scale[..., None]) ** 2).sum(-1)
    return np.exp(-0.5 * ((values - mean) / scale) ** 2) / np.maximum(norm, np.finfo(np.float64).tiny)


def weight_bits(alphabet: int) -> int:
    """Fraction bits of a table's integer weights: 30, fewer above 128 symbols, so that a row of alphabet
    weights of at most 2 * 2^bits each stays below 2^38 (quantize_freqs needs the sum below 2^39)."""
    return min(30, 37 - (alphabet - 1).bit_length())


def laplace_weights(alphabet: int, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Integer Laplace bin masses [rows, alphabet] in units of 2^-(bits+1), from (mean, scale) [rows, 1] in
    units of 2^-24. The CDF at each bin edge t is e^-(|t - mean| / scale) / 2 below the mean and
    1 - e^-(...)/2 above it; a bin's weight is the difference of its edges' CDFs (never negative)."""
    bits = weight_bits(alphabet)
    edges = (2 * np.arange(-1, alphabet, dtype=np.int64) + 1) << (UNIT_BITS - 1)  # v - 1/2 for v = 0..A
    g = exp_neg(ratio(np.abs(edges - mean), scale, X_BITS, 64), bits)
    twice_cdf = np.where(edges < mean, g, (2 << bits) - g)
    return np.maximum(np.diff(twice_cdf, axis=1), 0)


def gaussian_weights(alphabet: int, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Integer Gaussian densities [rows, alphabet] in units of 2^-bits, from (mean, scale) [rows, 1] in units
    of 2^-24: exp(-(u^2 - u0^2) / 2) with u = |v - mean| / scale and u0 its smallest value in the row, so the
    symbol nearest the mean weighs exactly 2^bits however small the scale (the constant factor cancels
    when the row is normalized)."""
    bits = weight_bits(alphabet)
    points = np.arange(alphabet, dtype=np.int64) << UNIT_BITS
    u = ratio(np.abs(points - mean), scale, 20, 2048)  # 2^-20 units; u0 <= 0.5 / 2^-6 = 32 is never capped
    x = (u * u) >> (41 - X_BITS)  # u^2 / 2 in units of 2^-26 (u^2 < 2^62)
    return exp_neg(x - x.min(axis=1, keepdims=True), bits)


def freq_table(model: str, alphabet: int, params: np.ndarray) -> np.ndarray:
    """Integer frequencies [rows, alphabet] (each >= 1, each row summing to 2^24) of a laplace or gaussian
    model from its (mean, scale) rows, float16 values held as float64. Integer arithmetic only: the table
    the coder uses, identical on every machine. ValueError on parameters the format does not allow."""
    if not 2 <= alphabet <= 1 << 16:
        raise ValueError(f"alphabet {alphabet} outside [2, 65536]")
    units = f16_units(np.asarray(params, np.float64).reshape(-1, 2))
    mean, scale = units[:, :1], units[:, 1:]
    if (scale < 1).any() or (mean > (alphabet - 1) << UNIT_BITS).any():
        raise ValueError("means must lie in the alphabet and scales be positive")
    weights = {"laplace": laplace_weights, "gaussian": gaussian_weights}[model]
    return quantize_freqs(weights(alphabet, mean, scale))


def categorical_freqs(counts: np.ndarray) -> np.ndarray:
    """Integer frequencies (each >= 1, summing to 2^24) of a histogram of n >= 2 integer counts."""
    return quantize_freqs(np.asarray(counts, np.int64).reshape(1, -1))[0]
