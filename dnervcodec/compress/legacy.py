"""The entropy models of formats 1 to 3: constriction's float models, kept to read (and test) older files.

Files of format 3.x and before code categorical tables as float probabilities (count / sum) and the
Laplace/Gaussian models with constriction's ``QuantizedLaplace``/``QuantizedGaussian``, whose fixed-point
tables come from libm's ``exp`` and the ``special`` crate's ``erf`` evaluated inside constriction: not
specified to the last bit, so not guaranteed to agree between machines (docs/bitstream.md, "Portability").
Format 4 replaces them with integer tables (:func:`dnervcodec.compress.models.freq_table`); nothing here
is used to write a file.
"""

from __future__ import annotations

import constriction
import numpy as np

from .models import bin_mass

CHUNK_SYMBOLS = 1 << 20  # per-symbol parameter arrays are built this many symbols at a time


def bin_probs(model: str, values: np.ndarray, mean: np.ndarray, scale: np.ndarray, alphabet: int) -> np.ndarray:
    """Probabilities constriction's quantized models give `values`: the mass of [v - 0.5, v + 0.5], with
    the tails beyond the alphabet folded into its first and last symbol (no renormalization)."""
    a = np.where(values <= 0, -np.inf, values - 0.5)
    b = np.where(values >= alphabet - 1, np.inf, values + 0.5)
    return bin_mass(model, a, b, mean, scale)


def p_max(model: str, alphabet: int, params: np.ndarray) -> float:
    """Largest probability a (validated) categorical or parametric model gives any symbol, in float.

    For a quantized bell that is the bin holding its mean, or one of the two edge symbols, which also
    carry the tails beyond the alphabet.
    """
    if model == "categorical":
        counts = params[1:]
        return float(counts.max() / counts.sum())
    mean, scale = params[:, 0], params[:, 1]
    candidates = np.stack([np.round(mean), np.zeros_like(mean), np.full_like(mean, alphabet - 1)])
    return float(min(1.0, bin_probs(model, candidates, mean, scale, alphabet).max()))


def categorical_model(counts: np.ndarray):
    """constriction's model of a table of n >= 2 weights: float probabilities, its own quantization."""
    return constriction.stream.model.Categorical(counts / counts.sum(), perfect=False)


def _chunks(params: np.ndarray, count: int) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """(start, stop, means, scales) over group-major symbols, in ranges of at most CHUNK_SYMBOLS symbols;
    row r of params covers symbols [r * size, (r + 1) * size) with size = count / rows."""
    size = count // params.shape[0] if count else 1
    out = []
    for start in range(0, count, CHUNK_SYMBOLS):
        stop = min(start + CHUNK_SYMBOLS, count)
        first, last = start // size, (stop - 1) // size
        skip = start - first * size
        rows = params[first : last + 1]
        means = np.repeat(rows[:, 0], size)[skip : skip + stop - start]
        scales = np.repeat(rows[:, 1], size)[skip : skip + stop - start]
        out.append((start, stop, means, scales))
    return out


def code_parametric(coder, model: str, alphabet: int, params: np.ndarray, symbols: np.ndarray | None,
                    count: int) -> np.ndarray | None:
    """Encode `symbols` (group-major) with `coder`, or decode `count` of them: one scalar model when all
    groups share one (mean, scale) row, else per-symbol parameter arrays built a chunk at a time."""
    decoding = symbols is None
    out = np.empty(count, np.int32) if decoding else None
    m = constriction.stream.model
    cls = m.QuantizedLaplace if model == "laplace" else m.QuantizedGaussian
    if params.shape[0] == 1:
        shared = cls(0, alphabet - 1, float(params[0, 0]), float(params[0, 1]))
        if decoding:
            out[:] = coder.decode(shared, count)
        elif count:
            coder.encode(symbols, shared)
        return out
    family = cls(0, alphabet - 1)
    for start, stop, means, scales in _chunks(params, count):
        if decoding:
            out[start:stop] = coder.decode(family, means, scales)
        else:
            coder.encode(symbols[start:stop], family, means, scales)
    return out
