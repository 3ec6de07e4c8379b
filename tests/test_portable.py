"""Portable decoding (format 4): integer entropy tables, identical on every machine, and coded exactly.

- The tables are bit-identical to a committed reference (sha256 of the integer tables over a grid of
  parameters): a platform, numpy or Python that computes any of them differently fails here, loudly, and
  by name (pow2 tables, exp, laplace, gaussian, categorical).
- They are the distributions they claim to be (close to the float pmf) and valid for the coder (every
  frequency >= 1, each row summing to 2^24).
- constriction codes exactly these frequencies: read back out of its decoder, symbol by symbol.
- The decoder builds tables only within the format's budget, checked before any is built.
"""

from __future__ import annotations

import dataclasses
import hashlib

import constriction
import numpy as np
import pytest

from dnervcodec.compress import fixedpoint
from dnervcodec.compress.entropy import (
    TABLE_CHUNK,
    TABLE_FREE,
    TABLE_MEMORY,
    TABLE_PER_SYMBOL,
    CodedSymbols,
    check_coded,
    check_stream,
    decode_stream,
    encode_stream,
    encode_symbols,
    exact_model,
    information_bits,
    table_shares,
)
from dnervcodec.compress.fixedpoint import TOTAL, X_BITS, X_MAX, exp_neg, quantize_freqs
from dnervcodec.compress.models import categorical_freqs, freq_table, pmf
from dnervcodec.errors import BitstreamError

ALPHABETS = (2, 3, 16, 256, 4096, 65536)
SCALES = (2.0**-6, 0.1, 0.5, 1.0, 3.7, 40.0, 1000.0, 65504.0)


def _grid(alphabet: int) -> np.ndarray:
    """(mean, scale) rows as float16 values: means at the edges, off-centre and mid-alphabet, every scale."""
    top = np.float16(min(alphabet - 1, 65504))  # the largest float16 mean in the alphabet
    top = float(top) if float(top) <= alphabet - 1 else float(np.nextafter(top, np.float16(0)))
    means = sorted({min(float(np.float16(min(m, top))), top) for m in (0.0, 1 / 3, 1.5, alphabet / 2 - 0.25, top)})
    return np.array([[m, float(np.float16(s))] for m in means for s in SCALES], np.float64)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, "<i8").tobytes())
    return h.hexdigest()


def _tables(model: str) -> list[np.ndarray]:
    return [freq_table(model, a, _grid(a)) for a in ALPHABETS]


def _categorical_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(0)  # integers only: the same counts on every platform
    return [np.array([1, 0]), np.array([0, 5, 0, 0, 1]), rng.integers(0, 1000, 300),
            np.array([1 << 28, 1, 0, 3]), rng.integers(0, 3, 65536)]


# The reference: computed once by this code (x86-64, Linux, numpy 2.4.6, Python 3.11) and committed. Every other
# machine must reproduce it exactly, or its decoder would read other symbols from the same file. A change
# to the table code that changes a digest is a format change (docs/bitstream.md, "Portability").
REFERENCE = {
    "pow2": "bbf7817017ee0922f2e759de10d775d399f7fcacf8ef1a1ec0caa2866f3cf78b",
    "exp_neg": "de50a3dc8c535ce88a40cbf89ef3f28808b435deca2f69c65012024fa25619da",
    "laplace": "4465bd3146ea81bab3bb8cafa4629ba2ee1258b710f50097ca1b25f4c659204f",
    "gaussian": "306c2feac8e2cef773336a42ece425f1d0532bcd93e8a8e0e7111540e9cb67a5",
    "categorical": "3d2dd63d3a5fd4a8b6a3ef5cc8806efeacd30485b0da2d184e9a6e696e44978c",
}


def _computed() -> dict[str, str]:
    x = np.arange(0, X_MAX + 1, 997, dtype=np.int64)
    return {
        "pow2": _digest(*fixedpoint.pow2_neg_tables()),
        "exp_neg": _digest(*(exp_neg(x, bits) for bits in (30, 21, 0))),
        "laplace": _digest(*_tables("laplace")),
        "gaussian": _digest(*_tables("gaussian")),
        "categorical": _digest(*(categorical_freqs(c) for c in _categorical_cases())),
    }


def test_integer_tables_are_bit_identical_to_the_committed_reference() -> None:
    got = _computed()
    wrong = [name for name in REFERENCE if got[name] != REFERENCE[name]]
    assert not wrong, f"integer tables differ from the reference on this machine: {wrong} ({got})"


def test_exp_is_accurate_and_never_increases() -> None:
    """2^-f = round(high[f >> 13] * low[f & 8191] / 2^31) never increases with f when both tables decrease
    and the product at every change of the high index does not go up; then e^-x never increases with x,
    since y = x * log2(e) does not decrease and 2^-(n + f) is 2^-f shifted right by n, with 2^-f in (2^30, 2^31]."""
    high, low = fixedpoint.pow2_neg_tables()
    assert high[0] == low[0] == 1 << 31 and (np.diff(high) < 0).all() and (np.diff(low) < 0).all()
    h = np.arange(high.size - 1)
    at_end = (high[h] * low[-1] + (1 << 30)) >> 31
    assert (at_end >= high[h + 1]).all() and ((high[-1] * low[-1] + (1 << 30)) >> 31) >= 1 << 30
    x = np.concatenate([np.arange(0, 1 << 16), np.arange(0, X_MAX + 1, 4099), [X_MAX, 10 * X_MAX]]).astype(np.int64)
    e = exp_neg(x, 30)
    assert e[0] == 1 << 30 and (np.diff(e[: 1 << 16]) <= 0).all() and e[-2:].tolist() == [0, 0]
    ref = np.exp(-x / 2**X_BITS) * 2**30
    big = ref > 2**20
    assert np.abs(e[big] / ref[big] - 1).max() < 1e-6


@pytest.mark.parametrize("model", ["laplace", "gaussian"])
def test_tables_are_valid_and_close_to_the_float_model(model: str) -> None:
    for alphabet in ALPHABETS:
        params = _grid(alphabet)
        table = freq_table(model, alphabet, params)
        assert table.shape == (params.shape[0], alphabet) and table.dtype == np.int64
        assert (table >= 1).all() and (table.sum(axis=1) == TOTAL).all()
        p = pmf(model, np.arange(alphabet)[None, :], params[:, :1], params[:, 1:], alphabet)
        kl = (p * np.log2(np.maximum(p, 1e-300) * TOTAL / table)).sum(axis=1)  # bits a symbol lost to the table
        floor = -np.log2(1 - alphabet / TOTAL)  # every symbol's frequency >= 1: what the leaky floor costs
        assert kl.max() < floor + 2e-5, (model, alphabet, params[int(np.argmax(kl))])
        big = p > 2.0**-12
        assert np.abs(table[big] / (p[big] * TOTAL) - 1).max() < 6e-3, (model, alphabet)


def test_frequencies_keep_every_symbol_and_sum_exactly() -> None:
    w = np.array([[0, 0, 5, 0], [1, 1, 1, 1], [(1 << 38), 0, 0, 1]], np.int64)
    f = quantize_freqs(w)
    assert (f >= 1).all() and (f.sum(axis=1) == TOTAL).all()
    assert f[1].tolist() == [TOTAL // 4] * 4 and f[0].tolist() == [1, 1, TOTAL - 3, 1]
    for bad in (np.array([[0, 0]]), np.array([[1, -1]]), np.array([[1 << 39, 0]]), np.array([[1]])):
        with pytest.raises(ValueError):
            quantize_freqs(bad)
    with pytest.raises(ValueError):  # not a float16 value
        freq_table("laplace", 256, np.array([[1.0 + 2.0**-30, 1.0]]))


def _decoded_at(model, quantile: int) -> int:
    """The symbol constriction's decoder finds at a cumulative frequency, from a hand-made first state:
    point = quantile * (range >> 24) with the initial range 2^64 - 1."""
    point = int(quantile) * ((1 << 40) - 1)
    words = np.array([point >> 32, point & 0xFFFFFFFF], np.uint32)
    return int(constriction.stream.queue.RangeDecoder(words).decode(model))


@pytest.mark.parametrize("table", [
    freq_table("laplace", 16, np.array([[7.5, 1.25]]))[0],
    freq_table("gaussian", 256, np.array([[100.25, 3.5]]))[0],
    freq_table("laplace", 256, np.array([[0.0, 2.0**-6]]))[0],
    categorical_freqs(np.array([3, 0, 1000, 7, 0, 0, 12])),
], ids=["laplace16", "gaussian256", "sharp256", "categorical7"])
def test_constriction_codes_exactly_our_frequencies(table: np.ndarray) -> None:
    """Each symbol's interval in constriction's decoder starts and ends where our cumulative table says."""
    model = exact_model(table)
    left = np.concatenate([[0], np.cumsum(table)])
    for s in range(table.size):
        assert _decoded_at(model, left[s]) == s and _decoded_at(model, left[s + 1] - 1) == s


def test_information_bits_are_the_coded_size() -> None:
    rng = np.random.default_rng(3)
    x = np.clip(np.rint(rng.laplace(128, 6, (16, 500))), 0, 255).astype(np.int64)
    for model in ("laplace", "gaussian", "categorical"):
        coded = dataclasses.replace(encode_symbols(x, 256, model=model, axes=(0,)), words=None)
        words = encode_stream([(coded, x)])
        assert 0 <= 32 * words.size - information_bits(coded, x) <= 64  # the coder's flush only
        assert np.array_equal(decode_stream(words, [(coded, x.shape)])[0], x.reshape(-1))


def test_legacy_models_still_decode_what_they_coded() -> None:
    """Files of formats 1 to 3 keep their float models: the same symbols and parameters give other words
    under the parametric models (other distributions), and each decodes with its own."""
    x = np.clip(np.rint(np.random.default_rng(4).normal(60, 9, 3000)), 0, 255).astype(np.int64)
    for model in ("laplace", "gaussian", "categorical"):
        new = dataclasses.replace(encode_symbols(x, 256, model=model), words=None)
        old = dataclasses.replace(new, portable=False)
        words_new, words_old = encode_stream([(new, x)]), encode_stream([(old, x)])
        assert np.array_equal(words_new, words_old) == (model == "categorical")  # the same table, rounded alike
        assert np.array_equal(decode_stream(words_old, [(old, x.shape)])[0], x)
        assert np.array_equal(decode_stream(words_new, [(new, x.shape)])[0], x)


def test_table_budget_is_checked_before_any_table_is_built(monkeypatch) -> None:
    import dnervcodec.compress.entropy as entropy

    rows = np.tile([[30000.0, 500.0]], (2000, 1))  # 2000 groups of one symbol at 16 bits: 131M table entries
    hostile = CodedSymbols("gaussian", 1 << 16, 2000, rows, None, axis=0)
    built = []
    monkeypatch.setattr(entropy, "freq_table", lambda *a: built.append(a) or freq_table(*a))
    with pytest.raises(BitstreamError, match="table entries"):
        check_stream([(hostile, (2000, 1))], 10_000)
    with pytest.raises(BitstreamError, match="table entries"):
        check_coded(dataclasses.replace(hostile, words=np.zeros(10_000, np.uint32)), (2000, 1))
    assert not built
    fits = dataclasses.replace(hostile, params=rows[:1], count=2000)
    check_stream([(fits, (2000, 1))], 10_000)  # one row: 65,536 entries, within the free budget


def test_encoder_keeps_within_its_share_of_the_table_budget() -> None:
    rng = np.random.default_rng(5)
    x = np.clip(np.rint(rng.normal(rng.uniform(60, 200, (50, 1)), 3, (50, 40))), 0, 255).astype(np.int64)
    free = encode_symbols(x, 256, model="gaussian", axes=(None, 0))  # 50 x 256 entries fit the budget
    assert free.params.shape[0] == 50
    capped = encode_symbols(x, 256, model="gaussian", axes=(None, 0), max_table=49 * 256)
    assert capped.params.shape[0] == 1  # only the shared row fits
    with pytest.raises(ValueError, match="table budget"):
        encode_symbols(x, 256, model="gaussian", axes=(None, 0), max_table=255)
    wide = np.clip(np.rint(rng.normal(30000, 300, (50, 40))), 0, 65535).astype(np.int64)
    assert encode_symbols(wide, 1 << 16, model="gaussian", axes=(None, 0)).params.shape[0] == 1  # 50 x 65,536: over
    shares = table_shares([10, 1000, 0])
    assert sum(shares) <= TABLE_FREE + TABLE_PER_SYMBOL * 1010 and shares[2] == 0


@pytest.mark.parametrize("model", ["laplace", "gaussian"])
def test_table_memory_is_bounded_by_a_chunk(model: str) -> None:
    """Tables are built TABLE_CHUNK entries at a time; one chunk's temporaries stay within TABLE_MEMORY."""
    import tracemalloc

    coded = CodedSymbols(model, 1 << 16, 3, np.array([[30000.0, 500.0]]), None)
    x = np.array([29000, 30000, 31000])
    words = encode_stream([(coded, x)])
    tracemalloc.start()
    try:  # one chunk: a table of 65,536 entries, for the information bound and again for decoding
        check_stream([(coded, x.shape)], words.size)
        out = decode_stream(words, [(coded, x.shape)])[0]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(out, x.reshape(-1))
    assert TABLE_CHUNK == 1 << 16 and peak < TABLE_MEMORY
