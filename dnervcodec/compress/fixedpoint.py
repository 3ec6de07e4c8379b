"""Integer arithmetic that every machine computes alike: the building blocks of the format-4 entropy tables.

A decoder must rebuild, bit for bit, the probabilities its encoder used; a range decoder that differs in one
cumulative frequency loses the rest of its stream. libm's ``exp`` and a crate's ``erf`` are not specified to
the last bit, so the tables of the format-4 models are computed here with int64 numpy arithmetic only
(additions, multiplications, shifts, floor divisions): results that do not depend on the CPU, the compiler,
the math library or the numpy version. Every constant is an integer derived below (or written in
docs/bitstream.md); no float enters a table.

- :func:`f16_units`: a float16 parameter as an exact integer count of 2^-24.
- :func:`exp_neg`: e^-x in fixed point, from x in units of 2^-26; :func:`ratio`: a fixed-point quotient.
- :func:`quantize_freqs`: non-negative integer weights -> frequencies >= 1 summing to 2^24 (the coder's
  precision), by the floor of each cumulative weight.
"""

from __future__ import annotations

import functools
import math

import numpy as np

PRECISION = 24  # constriction's range coder: frequencies are integers summing to 2^24
TOTAL = 1 << PRECISION
UNIT_BITS = 24  # parameters are integers in units of 2^-24 (every float16 value is one)
X_BITS = 26  # exp_neg's argument: integers in units of 2^-26
X_MAX = 64 << X_BITS  # e^-64 < 2^-92: every larger argument gives 0 as well
LOG2E_Q29 = 774541002  # round(log2(e) * 2^29)
_Q = 31  # the powers of two below are Q31 integers
_WIDE = 63  # ... computed in Q63 first
_HALF_BITS = X_BITS // 2  # 2^-f is looked up by the high and the low 13 bits of f's 26 fraction bits
MAX_WEIGHT_SUM = (1 << 63) // TOTAL  # quantize_freqs multiplies cumulative weights by less than 2^24


@functools.cache
def pow2_neg_tables() -> tuple[np.ndarray, np.ndarray]:
    """Q31 tables of 2^-f for f = j / 2^13 (high) and f = j / 2^26 (low), j < 2^13, integers only.

    In Q63 (Python integers): c[i] = 2^(-2^-i) by repeated integer square roots from c[0] = 2^62 (that is
    1/2); a table doubles from t[0] = 2^63 (one), t[j + 2^b] = round(t[j] * c[i] / 2^63) for the factor c[i]
    of bit b; each entry is then rounded to Q31. The same integers on any machine.
    """
    c = [1 << (_WIDE - 1)]
    for _ in range(X_BITS):
        c.append(math.isqrt(c[-1] << _WIDE))

    def table(first: int) -> np.ndarray:  # bit b of j weighs 2^-(first + 13 - b) in f: factor c[first + 13 - b]
        t = [1 << _WIDE]
        for b in range(_HALF_BITS):
            factor = c[first + _HALF_BITS - b]
            t += [(v * factor + (1 << (_WIDE - 1))) >> _WIDE for v in t]
        out = np.array([(v + (1 << (_WIDE - _Q - 1))) >> (_WIDE - _Q) for v in t], np.int64)
        out.flags.writeable = False  # shared by every caller (cached)
        return out

    return table(0), table(_HALF_BITS)


def exp_neg(x: np.ndarray, bits: int) -> np.ndarray:
    """e^-x in units of 2^-bits (floor), for int64 x >= 0 in units of 2^-26; bits <= 30.

    e^-x = 2^-(n + f) with n + f = x * log2(e) (n an integer, f in [0, 1) with 26 bits); 2^-f is the
    product of two table entries, rounded to Q31, then shifted right by n + 31 - bits. Non-increasing in x.
    """
    if not 0 <= bits <= 30:
        raise ValueError(f"exp_neg gives at most 30 fraction bits, not {bits}")
    x = np.minimum(np.asarray(x, np.int64), X_MAX)
    y = (x * LOG2E_Q29) >> 29
    n, f = y >> X_BITS, y & ((1 << X_BITS) - 1)
    mask = (1 << _HALF_BITS) - 1
    high, low = pow2_neg_tables()
    r = (high[f >> _HALF_BITS] * low[f & mask] + (1 << (_Q - 1))) >> _Q
    shift = n + (_Q - bits)
    return np.where(shift < 63, r >> np.minimum(shift, 62), 0)


def ratio(numerator: np.ndarray, denominator: np.ndarray, frac_bits: int, limit: int) -> np.ndarray:
    """floor(numerator / denominator * 2^frac_bits) for int64 arrays with 0 <= numerator and
    1 <= denominator < 2^40, capped at limit * 2^frac_bits: a long division, 20 then the remaining
    fraction bits at a time, so no intermediate leaves int64."""
    q = numerator // denominator
    rem = numerator - q * denominator
    out = np.minimum(q, limit)
    done = 0
    while done < frac_bits:
        step = min(20, frac_bits - done)
        digit = (rem << step) // denominator
        rem = (rem << step) - digit * denominator
        out = (out << step) + digit
        done += step
    return np.where(q >= limit, limit << frac_bits, out)


def f16_units(values: np.ndarray) -> np.ndarray:
    """Non-negative float16 values (held as float64) as exact int64 counts of 2^-24; ValueError otherwise.

    Scaling by a power of two is exact in IEEE arithmetic, and every float16 value is a multiple of 2^-24
    below 2^16, so the integers are the values themselves, not approximations.
    """
    v = np.asarray(values, np.float64)
    if not (np.isfinite(v).all() and (v >= 0).all() and (v < 65536).all()):
        raise ValueError("parameters must be finite, non-negative float16 values")
    units = v * float(1 << UNIT_BITS)
    if not np.array_equal(units, np.floor(units)):
        raise ValueError("parameters must be float16 values (multiples of 2^-24)")
    return units.astype(np.int64)


def quantize_freqs(weights: np.ndarray) -> np.ndarray:
    """Integer weights [rows, n] (n >= 2, each row's sum in [1, MAX_WEIGHT_SUM)) -> frequencies >= 1 summing
    to 2^24 per row, as int64.

    With F = 2^24 - n free units and C_v the weight before symbol v, symbol v's left cumulative is
    floor(C_v * F / S) + v: every symbol gets one unit plus its share of F, rounding errors do not add up,
    and the last cumulative is exactly 2^24.
    """
    w = np.asarray(weights, np.int64)
    if w.ndim != 2 or w.shape[1] < 2 or w.shape[1] >= TOTAL:
        raise ValueError(f"weights must be rows of 2 to {TOTAL - 1} entries")
    if (w < 0).any():
        raise ValueError("weights must be non-negative")
    total = w.sum(axis=1, keepdims=True)
    if (total < 1).any() or (total >= MAX_WEIGHT_SUM).any():
        raise ValueError(f"each row of weights must sum to 1 .. {MAX_WEIGHT_SUM - 1}")
    n = w.shape[1]
    cumulative = np.concatenate([np.zeros((w.shape[0], 1), np.int64), np.cumsum(w, axis=1)], axis=1)
    left = (cumulative * (TOTAL - n)) // total + np.arange(n + 1, dtype=np.int64)
    return np.diff(left, axis=1)
