"""Integer symbols <-> compressed words with constriction's range coder, one model per tensor (or per group).

For each tensor the encoder scores these models by their information bits (-sum log2 p of the symbols)
plus side information, and keeps the cheapest one whose information bits stay within PAYLOAD_TOLERANCE
(2%) of the symbols' empirical entropy, so every tensor's payload sits at its entropy and the model is
reported apart as side information; or the uniform model, the raw bits, where that is cheaper in total:

- ``categorical``: the tensor's own histogram over the used range [lo, hi]. It codes at the empirical
  entropy, so it always qualifies; the table is side information, stored as integer counts with an
  adaptive Rice code (a few bits per entry rather than 32).
- ``laplace`` / ``gaussian``: a quantized continuous distribution over the whole alphabet, with one
  (mean, scale) pair for the tensor, or one per index along a *group axis* (the channels of an embedding,
  the output channels of a conv weight), because channels differ in centre and spread: a pooled histogram
  of 16 embedding channels is a mixture no single bell fits. Parameters are float16 (32 bits a group).
  *Pinned* variant: min/max quantization puts every channel's minimum at symbol 0 and its maximum at the
  top symbol, far out in any bell's tails (about 10 bits each). Pinned coding sends the position of each
  group's first 0 and first top symbol instead (log2 of the group size, uniform) and codes the other
  symbols with the bell: a conv weight with 15 values per output channel saves a fifth of its size.
- ``uniform``: no parameters at all, log2(alphabet) bits a symbol: the raw values. Chosen where that is
  within 2% of the entropy, and also wherever it is the cheapest in total, so that no tensor ever costs
  more than its raw bits (at 12 to 16 bits a histogram of up to 65,536 entries would cost more as side
  information than the values themselves; on tiny tensors, too, the table outweighs what it saves).

A file codes all tensors of a segment into one stream (:func:`encode_stream`), so the coder's final flush
is paid once per segment, not once per tensor; :func:`encode_symbols` alone gives a tensor its own words.

Portable tables (format 4): the decoder must build bit-identical probabilities on every machine. Every
model's frequencies are integers computed by our own integer arithmetic (:mod:`.models`,
:mod:`.fixedpoint`) from the parameters in the file, and constriction is handed exactly those frequencies
(:func:`exact_model`), never a float distribution to quantize. ``CodedSymbols.portable=False`` marks the
float models of formats 1 to 3 (:mod:`.legacy`), which are only read. A parametric model builds one table
of ``alphabet`` entries per parameter row; the rows a segment may ask for are bounded (TABLE_FREE +
TABLE_PER_SYMBOL per symbol), so a small hostile file cannot make the decoder build huge tables.

Tables are built ``TABLE_CHUNK`` entries at a time, so memory stays bounded. The range coder (a queue) is
used rather than ANS (a stack) because it ignores words after the coded data, which lets the encoder pad
(see below).

Decoding is parsing untrusted input: :func:`check_coded` validates every field, and the symbol count (of a
tensor with its own words, or of a whole stream in :func:`check_stream`) is bounded by the number of coded
words *before* anything is allocated:

- information bound: every symbol carries at least ``-log2(p_max)`` bits, where ``p_max`` is the largest
  probability the model gives any symbol, so ``count * -log2(p_max) <= 32 * words + 64``;
- ratio bound: ``count <= FREE_SYMBOLS + SYMBOLS_PER_WORD * words`` for any model, which also covers the
  zero-information case (a one-symbol table). The encoder appends zero words when a very low-entropy
  tensor (under 0.5 bit per symbol) would otherwise break it: so decoded symbols never outnumber the
  stored bytes by more than a fixed factor.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Iterator, Sequence

import constriction
import numpy as np

from ..errors import BitstreamError
from . import legacy
from .fixedpoint import PRECISION, TOTAL
from .models import LOG2_FLOOR, categorical_freqs, freq_table, pmf
from .tables import pack_counts, unpack_counts  # noqa: F401  (unpack_counts re-exported for the reader)
from .quant import half

MODELS = ("categorical", "laplace", "gaussian", "uniform")
PARAMETRIC = ("laplace", "gaussian")
MAX_ALPHABET = 1 << 16
MAX_COUNT = 1 << 28  # symbols in one tensor
FREE_SYMBOLS = 4096  # symbols any tensor may have regardless of its coded size
SYMBOLS_PER_WORD = 64  # beyond that, at most this many symbols per 32-bit word (>= 0.5 bit per symbol)
INFO_SLACK_BITS = 64  # coder start/flush overhead allowed in the information bound
P_MAX_MARGIN = 2.0**-12  # constriction's fixed-point (24-bit) probabilities may exceed the float ones slightly
MIN_SCALE = 2.0**-6  # Laplace scale / Gaussian std, in symbols (exact in float16)
MAX_SCALE = 2.0**20  # format 1 stored float32 scales; float16 ones stop at 65504
MAX_SCALE_F16 = 65504.0
TABLE_CHUNK = 1 << 16  # integer table entries built at a time (one row of the largest alphabet)
TABLE_MEMORY = 128 * TABLE_CHUNK  # bytes the decoder's temporaries for one chunk stay under (measured: ~90 an entry)
TABLE_FREE = 1 << 16  # table entries (parameter rows x alphabet) any segment may ask the decoder to build
TABLE_PER_SYMBOL = 4  # beyond that, at most this many per symbol of the segment (~0.1 us each to build)
_SCALE_GRID = np.array([0.6, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5])  # multipliers tried around the moment estimate
PARAMETRIC_GROUP_BITS = 32  # float16 mean + float16 scale per group
PARAMETRIC_HEADER_BITS = 48  # u8 group axis + u8 flags + u32 parameter rows
MAX_PIN_GROUP = 1 << 24  # constriction's Uniform model takes sizes below 2^24
CATEGORICAL_HEADER_BITS = 96  # u32 lo + u32 table length + u32 table bytes
PAYLOAD_TOLERANCE = 1.02  # a tensor's information bits may exceed its empirical entropy by at most this factor


@dataclass(frozen=True, eq=False)
class CodedSymbols:
    """One tensor's symbols as coded words plus everything needed to decode them.

    ``params`` (float64, exactly the values the file stores): categorical -> [lo, w_lo, ..., w_hi];
    laplace/gaussian -> rows of (mean, scale): one row shared by all groups, or one row per group;
    uniform -> empty. ``axis``: the tensor axis whose indices are the groups (None: one group, the whole
    tensor); symbols are coded group after group. ``pinned``: each group's first 0 and first top symbol are
    sent as positions, the rest with the parametric model.
    ``words``: uint32 range-coder words, possibly followed by zero padding words; None for a tensor coded in
    its segment's shared stream (format 3). ``info_bits``: the encoder's -sum log2 p of the symbols under
    this model (not stored in files; None when read from one). ``portable``: the model's integer tables
    (format 4, what the encoder writes); False for constriction's float models (read from formats 1 to 3).
    """

    model: str
    alphabet: int
    count: int
    params: np.ndarray
    words: np.ndarray | None
    axis: int | None = None
    pinned: bool = False
    info_bits: float | None = None
    portable: bool = True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CodedSymbols):
            return NotImplemented
        return (
            self.model == other.model
            and self.alphabet == other.alphabet
            and self.count == other.count
            and self.axis == other.axis
            and self.pinned == other.pinned
            and self.portable == other.portable
            and self.params.dtype == other.params.dtype
            and np.array_equal(self.params, other.params)
            and (self.words is None) == (other.words is None)
            and (self.words is None or (self.words.dtype == other.words.dtype
                                        and np.array_equal(self.words, other.words)))
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays: not hashable

    @property
    def payload_bits(self) -> int:
        """Bits of its own coded words (padding included); 0 for a tensor of a shared stream."""
        return 0 if self.words is None else 32 * int(self.words.size)

    @property
    def total_bits(self) -> float:
        """Information bits plus side information: what model selection minimizes."""
        if self.info_bits is None:
            raise ValueError("information bits are known only to the encoder")
        return self.info_bits + side_info_bits(self)


def side_info_bits(coded: CodedSymbols) -> int:
    """Bits of the entropy-model parameters as the file stores them (formats 2 and 3): side information."""
    if coded.model == "uniform":
        return 0
    if coded.model in PARAMETRIC:
        return PARAMETRIC_HEADER_BITS + PARAMETRIC_GROUP_BITS * int(coded.params.shape[0])
    counts = coded.params[1:]
    if not np.array_equal(counts, np.floor(counts)):  # a format-1 table of float weights
        return 32 * int(coded.params.size)
    return CATEGORICAL_HEADER_BITS + 8 * len(pack_counts(counts.astype(np.int64)))


def empirical_entropy_bits(symbols: np.ndarray, alphabet: int) -> float:
    """Zeroth-order entropy of the symbols, in total bits: sum over symbols of -log2(count/N)."""
    symbols = np.asarray(symbols).reshape(-1)
    if symbols.size == 0:
        return 0.0
    counts = np.bincount(symbols, minlength=alphabet).astype(np.float64)
    counts = counts[counts > 0]
    return float(-(counts * np.log2(counts / symbols.size)).sum())


# ---------------------------------------------------------------------------------------------- models


def exact_model(freqs: np.ndarray):
    """The constriction model that codes exactly these integer frequencies (n >= 2, each >= 1, sum 2^24).

    constriction's leaky quantization of float weights w gives symbol i the left cumulative
    floor(W_i * (2^24 - n) / sum(w)) + i, with W_i the sum of the weights before i, in float64. Handed
    w = freqs - 1 (integers, exactly representable, summing to exactly 2^24 - n), its scale is exactly 1
    and every sum exact, so its table is ours whatever the machine: tests/test_portable.py reads the
    cumulatives back out of its decoder to check.
    """
    return constriction.stream.model.Categorical((np.asarray(freqs, np.int64) - 1).astype(np.float64),
                                                 perfect=False)


def table_entries(coded: CodedSymbols) -> int:
    """Integer table entries the decoder builds for a tensor: parameter rows x alphabet for a portable
    parametric model (a categorical table is stored in the file, so it is already paid for)."""
    if not coded.portable or coded.model not in PARAMETRIC:
        return 0
    return int(coded.params.shape[0]) * int(coded.alphabet)


def table_budget(count: int) -> int:
    """Table entries a tensor (or a segment) of `count` symbols may ask for: the format's limit."""
    return TABLE_FREE + TABLE_PER_SYMBOL * count


def table_shares(counts: Sequence[int]) -> list[int]:
    """Each tensor's share of its segment's table budget: TABLE_PER_SYMBOL per symbol plus TABLE_FREE split
    in proportion to the counts (so the shares add up to at most table_budget(sum(counts)))."""
    total = max(1, sum(counts))
    return [TABLE_PER_SYMBOL * c + TABLE_FREE * c // total for c in counts]


def _row_tables(model: str, alphabet: int, params: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, integer tables [rows, alphabet]) of a parametric model, about TABLE_CHUNK entries at a time."""
    step = max(1, TABLE_CHUNK // alphabet)
    for start in range(0, params.shape[0], step):
        yield start, freq_table(model, alphabet, params[start : start + step])


@functools.lru_cache(maxsize=64)
def _table_p_max(model: str, alphabet: int, raw: bytes) -> float:
    params = np.frombuffer(raw, np.float64).reshape(-1, 2)
    return max(int(tables.max()) for _, tables in _row_tables(model, alphabet, params)) / TOTAL


def _p_max(model: str, alphabet: int, params: np.ndarray, portable: bool = True) -> float:
    """Largest probability the (already validated) model gives any symbol: exact for portable models (the
    largest integer frequency / 2^24), constriction's float estimate for the legacy ones."""
    if model == "uniform":
        return 1.0 / alphabet
    if model == "categorical" and params.size == 2:
        return 1.0
    if not portable:
        return legacy.p_max(model, alphabet, params)
    if model == "categorical":
        return float(categorical_freqs(params[1:]).max()) / TOTAL
    return _table_p_max(model, alphabet, np.ascontiguousarray(params, np.float64).tobytes())


def max_symbols(model: str, alphabet: int, params: np.ndarray, num_words: int, pinned_groups: int = 0,
                portable: bool = True) -> int:
    """Most symbols ``num_words`` coded words may hold under this model (the format's count limit).

    With pinned groups, the two pinned symbols of a group (at least 3 symbols) cost at least
    log2(3) + log2(2) bits together, and every other symbol at least -log2(p_max).
    """
    limit = min(MAX_COUNT, FREE_SYMBOLS + SYMBOLS_PER_WORD * num_words)
    p_up = _p_max(model, alphabet, params, portable) + P_MAX_MARGIN
    if p_up < 1.0:
        budget = 32 * num_words + INFO_SLACK_BITS - pinned_groups * math.log2(6)
        if budget < 0:
            return 0
        limit = min(limit, 2 * pinned_groups + int(budget / -math.log2(p_up)))
    return limit


def _categorical_model(params: np.ndarray, portable: bool):
    """The constriction model of a validated table (None for a one-entry table, which needs no coding)."""
    counts = params[1:]
    if counts.size == 1:
        return None
    if portable:
        return exact_model(categorical_freqs(counts))
    return legacy.categorical_model(counts)


def _code_tables(coder, model: str, alphabet: int, params: np.ndarray, symbols: np.ndarray | None,
                 count: int) -> np.ndarray | None:
    """Encode `symbols` (group-major) with `coder`, or decode `count` of them, with the integer tables:
    row r's table codes group r's symbols, or one table all of them when there is one row."""
    decoding = symbols is None
    out = np.empty(count, np.int32) if decoding else None
    size = count // params.shape[0]
    for start, tables in _row_tables(model, alphabet, params):
        for i, table in enumerate(tables):
            lo = (start + i) * size
            model_r = exact_model(table)
            if decoding:
                out[lo : lo + size] = coder.decode(model_r, size)
            else:
                coder.encode(symbols[lo : lo + size], model_r)
    return out


def _layout(count: int, groups: int, pinned: bool) -> tuple[int, int]:
    """(symbols per group, symbols coded by the parametric model) of a grouped, maybe pinned tensor."""
    size = count // groups
    return size, count - 2 * groups if pinned else count


# ---------------------------------------------------------------------------------------------- encoding


def _fit_group(model: str, symbols: np.ndarray, alphabet: int) -> tuple[float, float]:
    """(mean, scale) for one group, as float16 values: the moment estimate, then the scale from a small grid
    by the group's cross-entropy under the quantized model (the continuous estimate ignores the binning,
    which matters when the scale is about one symbol or less)."""
    x = symbols.astype(np.float64)
    if model == "laplace":
        mean = float(np.median(x))
        scale = float(np.mean(np.abs(x - mean)))
    else:
        mean, scale = float(x.mean()), float(x.std())
    mean = float(half(mean, lo=0.0, hi=alphabet - 1.0, dtype=np.float64))
    values, weights = np.unique(symbols, return_counts=True)
    scales = half(np.clip(scale * _SCALE_GRID, MIN_SCALE, MAX_SCALE_F16), lo=MIN_SCALE, hi=MAX_SCALE_F16,
                  dtype=np.float64)
    p = pmf(model, values.astype(np.float64)[None, :], np.float64(mean), scales[:, None], alphabet)
    bits = -(weights[None, :] * np.log2(np.maximum(p, LOG2_FLOOR))).sum(1)
    return mean, float(scales[int(np.argmin(bits))])


def _grouped(symbols: np.ndarray, axis: int | None) -> np.ndarray:
    """Symbols [groups, per_group] in coding order: group-major along `axis` (one row for None)."""
    if axis is None:
        return symbols.reshape(1, -1)
    return np.moveaxis(symbols, axis, 0).reshape(symbols.shape[axis], -1)


def _drop(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Each row without its element at cols[row]."""
    keep = np.ones(rows.shape, bool)
    keep[np.arange(rows.shape[0]), cols] = False
    return rows[keep].reshape(rows.shape[0], rows.shape[1] - 1)


def _pin(groups: np.ndarray, alphabet: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(position of each group's first 0, position of its first top symbol once that 0 is removed, the
    other symbols), or None when some group lacks a 0 or a top symbol or is too small or too large."""
    n = groups.shape[1]
    if not 3 <= n <= MAX_PIN_GROUP:
        return None
    top = alphabet - 1
    if not ((groups == 0).any(1).all() and (groups == top).any(1).all()):
        return None
    first_low = np.argmax(groups == 0, axis=1)
    rest = _drop(groups, first_low)
    first_top = np.argmax(rest == top, axis=1)
    return first_low.astype(np.int32), first_top.astype(np.int32), _drop(rest, first_top)


def _fit_parametric(model: str, symbols: np.ndarray, alphabet: int, axis: int | None, per_group: bool,
                    pinned: bool) -> np.ndarray | None:
    """(mean, scale) rows of one parametric variant, or None when it does not apply to these symbols."""
    groups = _grouped(symbols, axis)
    if pinned:
        pins = _pin(groups, alphabet)
        if pins is None:
            return None
        groups = pins[2]
    if per_group:
        return np.array([_fit_group(model, row, alphabet) for row in groups], np.float64)
    return np.array([_fit_group(model, groups.reshape(-1), alphabet)], np.float64)


def _table(symbols: np.ndarray) -> np.ndarray:
    """Categorical parameters [lo, count_lo, ..., count_hi] of the symbols' own histogram."""
    flat = symbols.reshape(-1).astype(np.int64)
    lo, hi = int(flat.min()), int(flat.max())
    return np.concatenate([[lo], np.bincount(flat - lo, minlength=hi - lo + 1)]).astype(np.float64)


def information_bits(coded: CodedSymbols, symbols: np.ndarray) -> float:
    """Bits the range coder spends on `symbols` (the tensor, C order) under `coded`'s model: -sum log2 p.

    This is a tensor's coded size inside a shared stream (the coder adds only one flush per stream). For
    portable models it uses the very integer frequencies the coder uses; for the legacy ones the float
    probabilities (constriction's 24-bit fixed-point ones differ by far less than 0.1%).
    """
    symbols = np.asarray(symbols)
    if coded.model == "uniform":
        return symbols.size * math.log2(coded.alphabet)
    if coded.model == "categorical":
        counts = coded.params[1:]
        if counts.size == 1:
            return 0.0
        index = symbols.reshape(-1).astype(np.int64) - int(coded.params[0])
        if coded.portable:
            return float((PRECISION - np.log2(categorical_freqs(counts)))[index].sum())
        return float(-np.log2(counts[index] / counts.sum()).sum())
    groups = _grouped(symbols, coded.axis)
    bits = 0.0
    if coded.pinned:
        n = groups.shape[1]
        bits += groups.shape[0] * (math.log2(n) + math.log2(n - 1))
        groups = _pin(groups, coded.alphabet)[2]
    if coded.portable:
        shared = coded.params.shape[0] == 1
        for start, tables in _row_tables(coded.model, coded.alphabet, coded.params):
            cost = PRECISION - np.log2(tables)
            block = groups if shared else groups[start : start + tables.shape[0]]
            bits += float(np.take_along_axis(np.broadcast_to(cost, (block.shape[0], cost.shape[1])),
                                             block.astype(np.int64), axis=1).sum())
        return bits
    rows = coded.params if coded.params.shape[0] == groups.shape[0] else np.repeat(coded.params, groups.shape[0], 0)
    step = max(1, legacy.CHUNK_SYMBOLS // max(groups.shape[1], 1))  # bounded temporaries on huge tensors
    for start in range(0, groups.shape[0], step):
        block, part = groups[start : start + step].astype(np.float64), rows[start : start + step]
        p = legacy.bin_probs(coded.model, block, part[:, :1], part[:, 1:], coded.alphabet)
        bits += float(-np.log2(np.maximum(p, LOG2_FLOOR)).sum())
    return bits


def _code_parametric(coder, coded: CodedSymbols, symbols: np.ndarray | None, count: int) -> np.ndarray | None:
    """The parametric symbols (group-major, pinned ones taken out) with the integer tables or, for a legacy
    model, constriction's float models."""
    code = _code_tables if coded.portable else legacy.code_parametric
    return code(coder, coded.model, coded.alphabet, coded.params, symbols, count)


def _code(coder, coded: CodedSymbols, symbols: np.ndarray | None, shape: tuple[int, ...] | None) -> np.ndarray | None:
    """Encode `symbols` (the tensor) into `coder` with `coded`'s model, or decode ``coded.count`` symbols from it
    (returned group-major, as :func:`_ungroup` expects). One routine for both sides, so they cannot drift."""
    decoding = symbols is None
    m = constriction.stream.model
    if coded.model == "uniform":
        if decoding:
            return np.asarray(coder.decode(m.Uniform(coded.alphabet), coded.count))
        coder.encode(symbols.reshape(-1).astype(np.int32), m.Uniform(coded.alphabet))
        return None
    if coded.model == "categorical":
        lo, cmodel = int(coded.params[0]), _categorical_model(coded.params, coded.portable)
        if decoding:
            if cmodel is None:
                return np.full(coded.count, lo, np.int32)
            return np.asarray(coder.decode(cmodel, coded.count)) + np.int32(lo)
        if cmodel is not None:
            coder.encode((symbols.reshape(-1) - lo).astype(np.int32), cmodel)
        return None
    if decoding:
        return _decode_parametric(coded, coder, shape)
    groups = _grouped(symbols, coded.axis).astype(np.int32)
    if coded.pinned:
        first_low, first_top, groups = _pin(groups, coded.alphabet)
        n = groups.shape[1] + 2
        coder.encode(first_low, m.Uniform(), np.full(first_low.size, n, np.int32))
        coder.encode(first_top, m.Uniform(), np.full(first_top.size, n - 1, np.int32))
    flat = np.ascontiguousarray(groups.reshape(-1))
    _code_parametric(coder, coded, flat, flat.size)
    return None


def _padded(coded: CodedSymbols, words: np.ndarray, pinned_groups: int) -> np.ndarray:
    """Words padded with zeros until the decoder's count limit admits the tensor's symbols (1% margin: the
    bound's logarithms are floats). Only near-constant tensors ever need this."""
    target = coded.count + coded.count // 100 + 1
    need = max(len(words), -(-(target - FREE_SYMBOLS) // SYMBOLS_PER_WORD))
    while max_symbols(coded.model, coded.alphabet, coded.params, need, pinned_groups, coded.portable) < target:
        need = max(need + 1, need + need // 64)
    if need > len(words):
        words = np.concatenate([words, np.zeros(need - len(words), np.uint32)])
    return words


def _variants(model: str, axes: Sequence[int | None]) -> list[tuple[int | None, bool, bool]]:
    """(axis, one parameter row per group, pinned) combinations worth trying for a model."""
    if model not in PARAMETRIC:
        return [(None, False, False)]
    out = []
    for axis in axes:
        if axis is None:
            out += [(None, False, False), (None, False, True)]
        else:  # shared parameters without pinning would only reorder the whole-tensor variant
            out += [(axis, True, False), (axis, False, True), (axis, True, True)]
    return out


def encode_symbols(
    symbols: np.ndarray, alphabet: int, model: str | None = None, axes: Sequence[int | None] = (None,),
    own_words: bool = True, max_table: int | None = None,
) -> CodedSymbols:
    """Entropy-code integer symbols in [0, alphabet) with the cheapest admissible model.

    `symbols` keeps the tensor's shape so that parametric models can group the symbols along each axis in
    `axes` (None = the whole tensor): one (mean, scale) per group, pinned extremes per group, or both.
    Every model and variant is scored by its information bits plus side information; the cheapest one
    whose payload stays within PAYLOAD_TOLERANCE of the empirical entropy wins (the histogram model
    always qualifies), unless the uniform model (the raw bits) is cheaper still: so a tensor never costs
    more than count * log2(alphabet) bits. ``model`` forces one model (tests and ablations), without that rule.
    The result carries its own words (a one-tensor stream); with ``own_words=False`` it holds only the
    chosen model (words None), for a caller that codes a segment's tensors in one :func:`encode_stream`.
    Parametric variants whose tables would exceed `max_table` entries (default: the format's limit for a
    tensor of this size, :func:`table_budget`; a segment passes each tensor its :func:`table_shares`) are
    not tried.
    """
    symbols = np.asarray(symbols)
    if not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got {symbols.dtype}")
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
    for axis in axes:
        if axis is not None and not 0 <= axis < symbols.ndim:
            raise ValueError(f"group axis {axis} is out of range for a {symbols.ndim}-d tensor")
    candidates = [model] if model is not None else list(MODELS)
    if model is None and lo == hi:
        candidates = ["categorical"]  # one symbol: a one-entry table, no words at all
    count = int(symbols.size)
    max_table = table_budget(count) if max_table is None else max_table
    scored = []
    for m in candidates:
        for axis, per_group, pinned in _variants(m, axes):
            if m in PARAMETRIC:
                if (symbols.shape[axis] if per_group else 1) * alphabet > max_table:
                    continue
                params = _fit_parametric(m, symbols, alphabet, axis, per_group, pinned)
                if params is None:
                    continue
            else:
                params = _table(symbols) if m == "categorical" else np.zeros(0, np.float64)
            coded = CodedSymbols(m, alphabet, count, params, np.zeros(0, np.uint32), axis, pinned)
            scored.append(replace(coded, info_bits=information_bits(coded, symbols)))
    if not scored:
        raise ValueError(f"no {model} variant fits a table budget of {max_table} entries")
    if model is None:
        ceiling = PAYLOAD_TOLERANCE * empirical_entropy_bits(symbols, alphabet) + 1e-6
        raw = [c for c in scored if c.model == "uniform"]
        scored = [c for c in scored if c.info_bits <= ceiling]
        scored += [c for c in raw if c.total_bits < min(s.total_bits for s in scored)]  # the raw-bits bound
    best = min(scored, key=lambda c: c.total_bits)
    if not own_words:
        return replace(best, words=None)
    encoder = constriction.stream.queue.RangeEncoder()
    _code(encoder, best, symbols, symbols.shape)
    pin_groups = (symbols.shape[best.axis] if best.axis is not None else 1) if best.pinned else 0
    words = _padded(best, np.asarray(encoder.get_compressed(), np.uint32), pin_groups)
    return replace(best, words=words)


# ---------------------------------------------------------------------------------------------- decoding


def _as_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise BitstreamError(f"corrupt tensor: {what} is not an integer")
    return int(value)


def _group_count(axis: int | None, shape: tuple[int, ...] | None) -> int:
    if axis is None:
        return 1
    if isinstance(axis, bool) or not isinstance(axis, int) or shape is None or not 0 <= axis < len(shape):
        raise BitstreamError(f"corrupt tensor: group axis {axis!r} does not fit the tensor")
    return int(shape[axis])


def check_coded(coded: CodedSymbols, shape: tuple[int, ...] | None = None) -> None:
    """Validate every field of untrusted coded symbols; raise BitstreamError on anything wrong.

    Cheap (no decoding): the bitstream reader runs it on every tensor, and :func:`decode_symbols` again.
    `shape` (the tensor's) is needed to check the group axis of a grouped model.
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
    if not isinstance(params, np.ndarray) or params.dtype != np.float64:
        raise BitstreamError("corrupt tensor: entropy parameters are not a float64 array")
    if words is not None and (not isinstance(words, np.ndarray) or words.dtype != np.uint32 or words.ndim != 1):
        raise BitstreamError("corrupt tensor: coded words are not a uint32 vector")
    if not np.isfinite(params).all():
        raise BitstreamError("corrupt tensor: entropy parameters are not finite")
    if not isinstance(coded.pinned, bool) or not isinstance(coded.portable, bool):
        raise BitstreamError("corrupt tensor: the pinned or portable flag is not a boolean")
    pinned_groups = 0
    if coded.model in PARAMETRIC:
        pinned_groups = _check_parametric(coded, alphabet, count, shape)
    else:
        if coded.axis is not None or coded.pinned:
            raise BitstreamError(f"corrupt tensor: a {coded.model} model covers the whole tensor")
        if coded.model == "categorical":
            _check_table(params, alphabet, coded.portable)
        elif params.size:
            raise BitstreamError("corrupt tensor: the uniform model has no parameters")
    if words is None:
        return  # coded in a shared stream: check_stream bounds the segment's symbols and tables as a whole
    _check_tables(table_entries(coded), count)
    limit = max_symbols(coded.model, alphabet, params, int(words.size), pinned_groups, coded.portable)
    if count > limit:
        raise BitstreamError(
            f"corrupt tensor: {count} symbols cannot fit in {words.size} coded words (at most {limit})"
        )


def _check_tables(entries: int, count: int) -> None:
    """The table budget, checked before any table is built."""
    if entries > table_budget(count):
        raise BitstreamError(
            f"corrupt tensor: its models need {entries} table entries, over the limit of {table_budget(count)} "
            f"for {count} symbols"
        )


def _check_table(params: np.ndarray, alphabet: int, portable: bool) -> None:
    if params.ndim != 1:
        raise BitstreamError("corrupt tensor: a categorical table is one vector")
    n = params.size - 1
    if not 1 <= n <= alphabet:
        raise BitstreamError(f"corrupt tensor: probability table of {n} entries for alphabet {alphabet}")
    lo = float(params[0])
    if lo != math.floor(lo) or not 0 <= lo <= alphabet - n:
        raise BitstreamError(f"corrupt tensor: table start {lo} does not fit the alphabet {alphabet}")
    table = params[1:]
    if (table < 0).any() or not table.sum() > 0:
        raise BitstreamError("corrupt tensor: probability table has negative entries or sums to zero")
    if portable and (not np.array_equal(table, np.floor(table)) or table.sum() > MAX_COUNT):
        raise BitstreamError(f"corrupt tensor: a table must hold integer counts summing to at most {MAX_COUNT}")


def _check_parametric(coded: CodedSymbols, alphabet: int, count: int, shape: tuple[int, ...] | None) -> int:
    """Validate (mean, scale) rows and the grouping; returns the number of pinned groups."""
    params, model = coded.params, coded.model
    if params.ndim != 2 or params.shape[1] != 2 or params.shape[0] < 1:
        raise BitstreamError(f"corrupt tensor: {model} model needs (mean, scale) rows")
    groups = _group_count(coded.axis, shape)
    rows = params.shape[0]
    if rows not in (1, groups):
        raise BitstreamError(f"corrupt tensor: {rows} parameter rows for {groups} groups")
    if count % groups:
        raise BitstreamError(f"corrupt tensor: {count} symbols do not split into {groups} groups")
    if coded.pinned and not 3 <= count // groups <= MAX_PIN_GROUP:
        raise BitstreamError(f"corrupt tensor: pinned groups of {count // groups} symbols")
    mean, scale = params[:, 0], params[:, 1]
    if not ((mean >= 0.0) & (mean <= alphabet - 1)).all():
        raise BitstreamError(f"corrupt tensor: {model} mean outside the alphabet")
    if not ((scale >= MIN_SCALE) & (scale <= MAX_SCALE)).all():
        raise BitstreamError(f"corrupt tensor: {model} scale outside [{MIN_SCALE}, {MAX_SCALE}]")
    if coded.portable and ((scale > MAX_SCALE_F16).any()
                           or not np.array_equal(params.astype(np.float16).astype(np.float64), params)):
        raise BitstreamError(f"corrupt tensor: {model} parameters are not float16 values")
    return groups if coded.pinned else 0


def _ungroup(symbols: np.ndarray, shape: tuple[int, ...] | None, axis: int | None) -> np.ndarray:
    """Group-major decoded symbols back to the tensor's C order (flattened)."""
    if axis is None:
        return symbols
    moved = (shape[axis],) + tuple(d for i, d in enumerate(shape) if i != axis)
    return np.ascontiguousarray(np.moveaxis(symbols.reshape(moved), 0, axis)).reshape(-1)


def _decode_parametric(coded: CodedSymbols, decoder, shape: tuple[int, ...] | None) -> np.ndarray:
    groups = _group_count(coded.axis, shape)
    size, coded_count = _layout(coded.count, groups, coded.pinned)
    if coded.pinned:
        uniform = constriction.stream.model.Uniform()
        first_low = np.asarray(decoder.decode(uniform, np.full(groups, size, np.int32)), np.int64)
        first_top = np.asarray(decoder.decode(uniform, np.full(groups, size - 1, np.int32)), np.int64)
    inner = _code_parametric(decoder, coded, None, coded_count)
    if not coded.pinned:
        return inner
    if first_low.max() >= size or first_top.max() >= size - 1:
        raise BitstreamError("corrupt tensor: a pinned position lies outside its group")
    out = np.empty((groups, size), np.int32)
    rows = np.arange(groups)
    top_at = first_top + (first_top >= first_low)  # first_top indexes the group without its pinned 0
    keep = np.ones((groups, size), bool)
    keep[rows, first_low] = False
    keep[rows, top_at] = False
    out[rows, first_low] = 0
    out[rows, top_at] = coded.alphabet - 1
    out[keep] = inner
    return out.reshape(-1)


def _decode_one(decoder, coded: CodedSymbols, shape: tuple[int, ...] | None) -> np.ndarray:
    """Decode one tensor's symbols from a (maybe shared) decoder, into C order; BitstreamError on any fault."""
    try:
        out = _code(decoder, coded, None, shape)
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError, BitstreamError):
        raise
    except BaseException as exc:  # constriction raises ValueError, or a pyo3 PanicException (a BaseException)
        raise BitstreamError(f"corrupt tensor: entropy decoding failed ({exc})") from None
    if out.shape != (coded.count,):
        raise BitstreamError("corrupt tensor: entropy decoder returned the wrong number of symbols")
    out = out.astype(np.int32, copy=False)
    if out.min() < 0 or out.max() >= coded.alphabet:
        raise BitstreamError("corrupt tensor: decoded symbols outside the alphabet")
    return _ungroup(out, shape, coded.axis)


def decode_symbols(coded: CodedSymbols, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decode exactly ``coded.count`` int32 symbols in the tensor's C order; BitstreamError on any fault."""
    check_coded(coded, shape)
    if coded.words is None:
        raise ValueError("this tensor is coded in its segment's shared stream: use decode_stream")
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(coded.words, np.uint32))
    return _decode_one(decoder, coded, shape)


# ---------------------------------------------------------------------------------------------- streams
# Format 3 codes all tensors of a segment, in file order, into one range-coder stream: the coder's flush
# (16 to 33 bits) is paid once per segment instead of once per tensor, which is what lets a tensor of a
# dozen symbols be coded at its entropy.


def _lower_bound_bits(coded: CodedSymbols, shape: tuple[int, ...] | None) -> float:
    """Fewest bits any ``coded.count`` symbols can take under this (validated) model: the information bound."""
    p_up = _p_max(coded.model, coded.alphabet, coded.params, coded.portable) + P_MAX_MARGIN
    if p_up >= 1.0:
        return 0.0
    groups = _group_count(coded.axis, shape) if coded.pinned else 0
    return (coded.count - 2 * groups) * -math.log2(p_up) + groups * math.log2(6)


def check_stream(items: Sequence[tuple[CodedSymbols, tuple[int, ...] | None]], num_words: int) -> None:
    """Bound a segment's symbols by its stream's size before anything is decoded (untrusted input).

    Each tensor must already have passed :func:`check_coded`. The segment's symbols may number at most
    FREE_SYMBOLS + SYMBOLS_PER_WORD words (ratio bound), the integer tables of its models may have at most
    table_budget(its symbols) entries, and their least possible information must fit in the stream's bits
    plus INFO_SLACK_BITS (information bound): the same limits as for one tensor.
    """
    count = sum(c.count for c, _ in items)
    if count > FREE_SYMBOLS + SYMBOLS_PER_WORD * num_words:
        raise BitstreamError(f"corrupt stream: {count} symbols cannot fit in {num_words} coded words")
    entries = sum(table_entries(c) for c, _ in items)
    if entries > table_budget(count):
        raise BitstreamError(
            f"corrupt stream: its models need {entries} table entries, over the limit of {table_budget(count)} "
            f"for {count} symbols"
        )
    need = sum(_lower_bound_bits(c, shape) for c, shape in items)
    if need > 32 * num_words + INFO_SLACK_BITS:
        raise BitstreamError(
            f"corrupt stream: its tensors need at least {need:.0f} bits, the stream holds {32 * num_words}"
        )


def encode_stream(items: Sequence[tuple[CodedSymbols, np.ndarray]]) -> np.ndarray:
    """One range-coder stream of every (model, symbols) pair in order, padded with zero words until
    :func:`check_stream` admits it with a 1% margin (only near-constant tensors need any padding)."""
    encoder = constriction.stream.queue.RangeEncoder()
    for coded, symbols in items:
        _code(encoder, coded, np.asarray(symbols), None)
    words = np.asarray(encoder.get_compressed(), np.uint32)
    margin = [(replace(c, count=c.count + c.count // 100 + 1), np.shape(s)) for c, s in items]
    count = sum(c.count for c, _ in margin)
    lower = sum(_lower_bound_bits(c, shape) for c, shape in margin)
    need = max(len(words), math.ceil((count - FREE_SYMBOLS) / SYMBOLS_PER_WORD),
               math.ceil((lower - INFO_SLACK_BITS) / 32))  # the least that check_stream admits
    return np.concatenate([words, np.zeros(need - len(words), np.uint32)]) if need > len(words) else words


def decode_stream(words: np.ndarray, items: Sequence[tuple[CodedSymbols, tuple[int, ...] | None]]) -> list[np.ndarray]:
    """Decode every tensor of a shared stream, in order, each into C order; BitstreamError on any fault."""
    for coded, shape in items:
        check_coded(coded, shape)
    check_stream(items, int(words.size))
    decoder = constriction.stream.queue.RangeDecoder(np.ascontiguousarray(words, np.uint32))
    return [_decode_one(decoder, coded, shape) for coded, shape in items]
