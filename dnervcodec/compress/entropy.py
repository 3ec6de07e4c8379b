"""Integer symbols <-> compressed words with constriction's range coder, one i.i.d. model per tensor.

For each tensor three models are tried and the one with the fewest total bits (coded words + side information)
is kept:

- ``categorical``: the tensor's own histogram over the used range [lo, hi]; params = [lo, count_lo, ...,
  count_hi] (float32). Codes at the empirical entropy, but the table costs 32 bits per entry.
- ``laplace`` / ``gaussian``: a quantized continuous distribution over the whole alphabet [0, alphabet);
  params = [mean, scale] (float32). Costs 64 bits of side information, wins on small tensors.

All calls into constriction are vectorized (one call per tensor). The range coder (a queue) is used rather
than ANS (a stack) because it ignores words after the coded data, which lets the encoder pad (see below).

Decoding is treated as parsing untrusted input: :func:`check_coded` validates every field and bounds the
symbol count by the number of coded words *before* anything is allocated:

- information bound: every symbol carries at least ``-log2(p_max)`` bits, where ``p_max`` is the largest
  probability the model gives any symbol, so ``count * -log2(p_max) <= 32 * words + 64``;
- ratio bound: ``count <= FREE_SYMBOLS + SYMBOLS_PER_WORD * words`` for any model, which also covers the
  zero-information case (a one-symbol table). The encoder appends zero words when a very low-entropy
  tensor (under 0.5 bit per symbol) would otherwise break it: so decoded symbols never outnumber the
  stored bytes by more than a fixed factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import constriction
import numpy as np

from ..errors import BitstreamError

MODELS = ("categorical", "laplace", "gaussian")
MAX_ALPHABET = 1 << 16
MAX_COUNT = 1 << 28  # symbols in one tensor
FREE_SYMBOLS = 4096  # symbols any tensor may have regardless of its coded size
SYMBOLS_PER_WORD = 64  # beyond that, at most this many symbols per 32-bit word (>= 0.5 bit per symbol)
INFO_SLACK_BITS = 64  # coder start/flush overhead allowed in the information bound
P_MAX_MARGIN = 2.0**-12  # constriction's fixed-point (24-bit) probabilities may exceed the float ones slightly
MIN_SCALE = 2.0**-6  # Laplace scale / Gaussian std, in symbols (exact in float32)
MAX_SCALE = 2.0**20
_SCALE_GRID = (0.6, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5)  # multipliers tried around the moment estimate


@dataclass(frozen=True, eq=False)
class CodedSymbols:
    """One tensor's symbols as coded words plus everything needed to decode them.

    ``params``: categorical -> [lo, count_lo, ..., count_hi]; laplace/gaussian -> [mean, scale]; float32.
    ``words``: uint32 range-coder words, possibly followed by zero padding words.
    """

    model: str
    alphabet: int
    count: int
    params: np.ndarray
    words: np.ndarray

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodedSymbols):
            return NotImplemented
        return (
            self.model == other.model
            and self.alphabet == other.alphabet
            and self.count == other.count
            and self.params.dtype == other.params.dtype
            and self.words.dtype == other.words.dtype
            and np.array_equal(self.params, other.params)
            and np.array_equal(self.words, other.words)
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays: not hashable

    @property
    def payload_bits(self) -> int:
        """Bits of coded words (padding included)."""
        return 32 * int(self.words.size)

    @property
    def total_bits(self) -> int:
        """Payload plus side information: what model selection minimizes."""
        return self.payload_bits + side_info_bits(self)


def side_info_bits(coded: CodedSymbols) -> int:
    """Bits of entropy-model parameters stored with the words (32 per float32 parameter)."""
    return 32 * int(coded.params.size)


def empirical_entropy_bits(symbols: np.ndarray, alphabet: int) -> float:
    """Zeroth-order entropy of the symbols, in total bits: sum over symbols of -log2(count/N)."""
    symbols = np.asarray(symbols).reshape(-1)
    if symbols.size == 0:
        return 0.0
    counts = np.bincount(symbols, minlength=alphabet).astype(np.float64)
    counts = counts[counts > 0]
    return float(-(counts * np.log2(counts / symbols.size)).sum())


# ---------------------------------------------------------------------------------------------- models


def _laplace_mass(a: float, b: float, mean: float, scale: float) -> float:
    """P(a < X < b) for X ~ Laplace(mean, scale), written to avoid cancellation when a <= mean <= b."""
    if a <= mean <= b:
        return 1.0 - 0.5 * (math.exp(-(b - mean) / scale) + math.exp(-(mean - a) / scale))
    if b < mean:
        return 0.5 * (math.exp((b - mean) / scale) - math.exp((a - mean) / scale))
    return 0.5 * (math.exp(-(a - mean) / scale) - math.exp(-(b - mean) / scale))


def _gaussian_mass(a: float, b: float, mean: float, std: float) -> float:
    """P(a < X < b) for X ~ N(mean, std^2)."""
    k = 1.0 / (std * math.sqrt(2.0))
    return 0.5 * (math.erf((b - mean) * k) - math.erf((a - mean) * k))


def _p_max(model: str, alphabet: int, params: np.ndarray) -> float:
    """Largest probability the (already validated) model gives a symbol, from its float parameters.

    For the quantized continuous models the mean lies inside the alphabet, so the most probable bin is the one
    holding the mean; truncation to the alphabet only divides by the mass inside it.
    """
    if model == "categorical":
        counts = params[1:].astype(np.float64)
        return float(counts.max() / counts.sum())
    mean, scale = float(params[0]), float(params[1])
    mass = _laplace_mass if model == "laplace" else _gaussian_mass
    k = float(round(mean))
    inside = mass(-0.5, alphabet - 0.5, mean, scale)
    if not inside > 0.0:
        return 1.0
    return min(1.0, mass(k - 0.5, k + 0.5, mean, scale) / inside)


def max_symbols(model: str, alphabet: int, params: np.ndarray, num_words: int) -> int:
    """Most symbols ``num_words`` coded words may hold under this model (the format's count limit)."""
    limit = min(MAX_COUNT, FREE_SYMBOLS + SYMBOLS_PER_WORD * num_words)
    p_up = _p_max(model, alphabet, params) + P_MAX_MARGIN
    if p_up < 1.0:
        limit = min(limit, int((32 * num_words + INFO_SLACK_BITS) / -math.log2(p_up)))
    return limit


def _constriction_model(model: str, alphabet: int, params: np.ndarray):
    """The constriction model for validated params (None for a one-entry table, which needs no coding)."""
    m = constriction.stream.model
    if model == "categorical":
        counts = params[1:].astype(np.float64)
        if counts.size == 1:
            return None
        return m.Categorical(counts / counts.sum(), perfect=False)
    mean, scale = float(params[0]), float(params[1])
    cls = m.QuantizedLaplace if model == "laplace" else m.QuantizedGaussian
    return cls(0, alphabet - 1, mean, scale)


def _shift(model: str, params: np.ndarray) -> int:
    """Symbol value of model index 0 (``lo`` for categorical tables)."""
    return int(params[0]) if model == "categorical" else 0


# ---------------------------------------------------------------------------------------------- encoding


def _fit_parametric(model: str, hist: np.ndarray, lo: int, alphabet: int, symbols: np.ndarray) -> np.ndarray:
    """[mean, scale] for a quantized Laplace (median, mean |x - median|) or Gaussian (mean, std).

    The scale is then refined on a small grid by the histogram's cross-entropy under the quantized model,
    which matters when the scale is about one symbol or less (the continuous estimate ignores the binning).
    """
    x = symbols.astype(np.float64)
    if model == "laplace":
        mean = float(np.median(x))
        scale = float(np.mean(np.abs(x - mean)))
    else:
        mean = float(x.mean())
        scale = float(x.std())
    mean = float(np.float32(min(max(mean, 0.0), alphabet - 1.0)))
    used = np.nonzero(hist)[0]
    values = (used + lo).astype(np.float64)
    weights = hist[used].astype(np.float64)
    best, best_bits = None, math.inf
    for mult in _SCALE_GRID:
        s = float(np.float32(min(max(scale * mult, MIN_SCALE), MAX_SCALE)))
        bits = _cross_entropy_bits(model, values, weights, mean, s, alphabet)
        if bits < best_bits:
            best, best_bits = s, bits
    return np.array([mean, best], np.float32)


def _cross_entropy_bits(
    model: str, values: np.ndarray, weights: np.ndarray, mean: float, scale: float, alphabet: int
) -> float:
    """Estimated bits to code a histogram (values, weights) under the quantized model (vectorized)."""
    a, b = values - 0.5, values + 0.5
    if model == "laplace":

        def cdf(t: np.ndarray) -> np.ndarray:
            tail = 0.5 * np.exp(-np.abs(t - mean) / scale)
            return np.where(t < mean, tail, 1.0 - tail)

    else:
        from scipy.special import ndtr

        def cdf(t: np.ndarray) -> np.ndarray:
            return ndtr((t - mean) / scale)

    inside = float(cdf(np.float64(alphabet - 0.5)) - cdf(np.float64(-0.5)))
    p = (cdf(b) - cdf(a)) / max(inside, 1e-300)
    p = np.maximum(p, 2.0**-24)
    return float(-(weights * np.log2(p)).sum())


def _range_encode(symbols: np.ndarray, cmodel) -> np.ndarray:
    if cmodel is None:
        return np.zeros(0, np.uint32)
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, cmodel)
    return np.asarray(encoder.get_compressed(), np.uint32)


def _encode_with(model: str, symbols: np.ndarray, alphabet: int, hist: np.ndarray, lo: int) -> CodedSymbols:
    if model == "categorical":
        params = np.concatenate([[np.float32(lo)], hist.astype(np.float32)]).astype(np.float32)
    else:
        params = _fit_parametric(model, hist, lo, alphabet, symbols)
    shift = _shift(model, params)
    words = _range_encode((symbols - shift).astype(np.int32), _constriction_model(model, alphabet, params))
    count = int(symbols.size)
    # Pad with zero words until the decoder's count limit admits this tensor (1% margin against float
    # differences between machines). Only near-constant tensors ever need this.
    target = count + count // 100 + 1
    need = max(len(words), -(-(target - FREE_SYMBOLS) // SYMBOLS_PER_WORD))
    while max_symbols(model, alphabet, params, need) < target:
        need = max(need + 1, need + need // 64)
    if need > len(words):
        words = np.concatenate([words, np.zeros(need - len(words), np.uint32)])
    return CodedSymbols(model=model, alphabet=alphabet, count=count, params=params, words=words)


def encode_symbols(symbols: np.ndarray, alphabet: int, model: str | None = None) -> CodedSymbols:
    """Entropy-code integer symbols in [0, alphabet) with the cheapest of the three models.

    ``model`` forces one model (tests and ablations); by default all three are coded and the smallest total
    (words + side information) wins.
    """
    symbols = np.asarray(symbols)
    if not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got {symbols.dtype}")
    symbols = symbols.reshape(-1)
    if isinstance(alphabet, bool) or not 2 <= int(alphabet) <= MAX_ALPHABET:
        raise ValueError(f"alphabet must be from 2 to {MAX_ALPHABET}, got {alphabet}")
    alphabet = int(alphabet)
    if not 1 <= symbols.size <= MAX_COUNT:
        raise ValueError(f"can code 1 to {MAX_COUNT} symbols, got {symbols.size}")
    lo, hi = int(symbols.min()), int(symbols.max())
    if lo < 0 or hi >= alphabet:
        raise ValueError(f"symbols span [{lo}, {hi}], outside the alphabet [0, {alphabet})")
    if model is not None and model not in MODELS:
        raise ValueError(f"unknown entropy model {model!r}: choose one of {', '.join(MODELS)}")
    symbols = symbols.astype(np.int32, copy=False)
    hist = np.bincount(symbols - lo, minlength=hi - lo + 1)
    candidates = [model] if model is not None else list(MODELS)
    if model is None and lo == hi:
        candidates = ["categorical"]  # one symbol: a one-entry table, no words at all
    coded = [_encode_with(m, symbols, alphabet, hist, lo) for m in candidates]
    return min(coded, key=lambda c: c.total_bits)


# ---------------------------------------------------------------------------------------------- decoding


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitstreamError(f"corrupt tensor: {what} is not an integer")
    return int(value)


def check_coded(coded: CodedSymbols) -> None:
    """Validate every field of untrusted coded symbols; raise BitstreamError on anything wrong.

    Cheap (no decoding): the bitstream reader runs it on every tensor, and :func:`decode_symbols` again.
    """
    if coded.model not in MODELS:
        raise BitstreamError(f"corrupt tensor: unknown entropy model {coded.model!r}")
    alphabet = _as_int(coded.alphabet, "alphabet")
    count = _as_int(coded.count, "symbol count")
    if not 2 <= alphabet <= MAX_ALPHABET:
        raise BitstreamError(f"corrupt tensor: alphabet {alphabet} outside [2, {MAX_ALPHABET}]")
    if not 1 <= count <= MAX_COUNT:
        raise BitstreamError(f"corrupt tensor: symbol count {count} outside [1, {MAX_COUNT}]")
    params, words = coded.params, coded.words
    if not isinstance(params, np.ndarray) or params.dtype != np.float32 or params.ndim != 1:
        raise BitstreamError("corrupt tensor: entropy parameters are not a float32 vector")
    if not isinstance(words, np.ndarray) or words.dtype != np.uint32 or words.ndim != 1:
        raise BitstreamError("corrupt tensor: coded words are not a uint32 vector")
    if not np.isfinite(params).all():
        raise BitstreamError("corrupt tensor: entropy parameters are not finite")
    if coded.model == "categorical":
        n = params.size - 1
        if not 1 <= n <= alphabet:
            raise BitstreamError(f"corrupt tensor: probability table of {n} entries for alphabet {alphabet}")
        lo = float(params[0])
        if lo != math.floor(lo) or not 0 <= lo <= alphabet - n:
            raise BitstreamError(f"corrupt tensor: table start {lo} does not fit the alphabet {alphabet}")
        table = params[1:].astype(np.float64)
        if (table < 0).any() or not table.sum() > 0:
            raise BitstreamError("corrupt tensor: probability table has negative entries or sums to zero")
    else:
        if params.size != 2:
            raise BitstreamError(f"corrupt tensor: {coded.model} model needs 2 parameters, got {params.size}")
        mean, scale = float(params[0]), float(params[1])
        if not 0.0 <= mean <= alphabet - 1:
            raise BitstreamError(f"corrupt tensor: {coded.model} mean {mean} outside the alphabet")
        if not MIN_SCALE <= scale <= MAX_SCALE:
            raise BitstreamError(f"corrupt tensor: {coded.model} scale {scale} outside [{MIN_SCALE}, {MAX_SCALE}]")
    limit = max_symbols(coded.model, alphabet, params, int(words.size))
    if count > limit:
        raise BitstreamError(
            f"corrupt tensor: {count} symbols cannot fit in {words.size} coded words (at most {limit})"
        )


def decode_symbols(coded: CodedSymbols) -> np.ndarray:
    """Decode exactly ``coded.count`` int32 symbols; BitstreamError on any corrupt field or coder failure."""
    check_coded(coded)
    shift = _shift(coded.model, coded.params)
    cmodel = _constriction_model(coded.model, coded.alphabet, coded.params)
    if cmodel is None:
        return np.full(coded.count, shift, np.int32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.words, np.uint32))
        out = np.asarray(decoder.decode(cmodel, coded.count))
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise
    except BaseException as exc:  # constriction raises ValueError, or a pyo3 PanicException (a BaseException)
        raise BitstreamError(f"corrupt tensor: entropy decoding failed ({exc})") from None
    if out.shape != (coded.count,):
        raise BitstreamError("corrupt tensor: entropy decoder returned the wrong number of symbols")
    out = out.astype(np.int32, copy=False)
    if shift:
        out += np.int32(shift)
    if out.min() < 0 or out.max() >= coded.alphabet:
        raise BitstreamError("corrupt tensor: decoded symbols outside the alphabet")
    return out
