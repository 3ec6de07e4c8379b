"""Entropy coding: exact round trips, model choice, coded size vs empirical entropy, strict decoding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dnervcodec.compress.entropy import (
    FREE_SYMBOLS,
    MODELS,
    CodedSymbols,
    check_coded,
    decode_symbols,
    empirical_entropy_bits,
    encode_symbols,
    max_symbols,
    side_info_bits,
)
from dnervcodec.compress.quant import quantize
from dnervcodec.errors import BitstreamError


def quantized(kind: str, n: int, seed: int, bits: int = 8, per_channel: int = 0) -> np.ndarray:
    """Symbols of realistic 8-bit min/max-quantized weights (per tensor, or per output channel)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, n) if kind == "gaussian" else rng.laplace(0, 0.05, n)
    if per_channel:
        w = w.reshape(per_channel, -1) * rng.uniform(0.5, 2, (per_channel, 1))
    symbols, _ = quantize(w.astype(np.float32), bits, 0 if per_channel else None)
    return symbols


# (label, symbols): a few thousand to a few hundred thousand symbols, as in DNeRV decoders and embeddings
REALISTIC = [
    ("gaussian-3k", quantized("gaussian", 3_000, 0)),
    ("laplace-5k", quantized("laplace", 5_000, 1)),
    ("gaussian-50k-perchannel", quantized("gaussian", 50_000, 2, per_channel=50)),
    ("laplace-200k", quantized("laplace", 200_000, 3)),
    ("gaussian-300k", quantized("gaussian", 300_000, 4)),
]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("alphabet", [2, 16, 256, 65536])
def test_round_trip_every_model(model: str, alphabet: int) -> None:
    rng = np.random.default_rng(alphabet)
    symbols = np.clip(np.rint(rng.normal(alphabet / 2, alphabet / 8 + 0.3, 2000)), 0, alphabet - 1).astype(np.int64)
    coded = encode_symbols(symbols, alphabet, model=model)
    assert coded.model == model and coded.count == symbols.size and coded.alphabet == alphabet
    assert coded.params.dtype == np.float32 and coded.words.dtype == np.uint32
    out = decode_symbols(coded)
    assert out.dtype == np.int32 and np.array_equal(out, symbols)


@pytest.mark.parametrize("label,symbols", REALISTIC, ids=[r[0] for r in REALISTIC])
def test_coded_payload_within_2_percent_of_empirical_entropy(label: str, symbols: np.ndarray) -> None:
    coded = encode_symbols(symbols, 256)
    entropy = empirical_entropy_bits(symbols, 256)
    assert np.array_equal(decode_symbols(coded), symbols)
    ratio = coded.payload_bits / entropy
    print(
        f"{label}: n={symbols.size} H={entropy / symbols.size:.4f} b/sym "
        f"coded={coded.payload_bits / symbols.size:.4f} b/sym (x{ratio:.4f}) model={coded.model} "
        f"side={side_info_bits(coded)} bits"
    )
    assert ratio <= 1.02


@pytest.mark.parametrize("label,symbols", REALISTIC[:3], ids=[r[0] for r in REALISTIC[:3]])
def test_chosen_model_is_the_cheapest(label: str, symbols: np.ndarray) -> None:
    chosen = encode_symbols(symbols, 256)
    totals = {m: encode_symbols(symbols, 256, model=m).total_bits for m in MODELS}
    assert chosen.total_bits == min(totals.values())
    assert totals[chosen.model] == chosen.total_bits


def test_categorical_wins_on_few_distinct_values() -> None:
    rng = np.random.default_rng(5)
    symbols = rng.choice([3, 100, 200], size=20_000, p=[0.7, 0.2, 0.1])  # far from any unimodal shape
    coded = encode_symbols(symbols, 256)
    assert coded.model == "categorical"
    assert coded.params[0] == 3 and coded.params.size == 1 + 198  # table stored over [lo, hi] only
    assert np.array_equal(decode_symbols(coded), symbols)
    assert coded.payload_bits <= 1.02 * empirical_entropy_bits(symbols, 256)


def test_empirical_entropy() -> None:
    assert empirical_entropy_bits(np.array([0, 1, 0, 1]), 2) == pytest.approx(4.0)
    assert empirical_entropy_bits(np.array([5, 5, 5]), 8) == 0.0
    assert empirical_entropy_bits(np.array([0, 1, 2, 3]), 4) == pytest.approx(8.0)


def test_degenerate_inputs() -> None:
    one = encode_symbols(np.array([7]), 256)
    assert np.array_equal(decode_symbols(one), [7])
    small = encode_symbols(np.full(1000, 42), 256)  # one symbol: a one-entry table and no words
    assert small.model == "categorical" and small.words.size == 0
    assert np.array_equal(decode_symbols(small), np.full(1000, 42))
    for model in ("laplace", "gaussian"):  # a zero spread is clamped to the minimum scale
        coded = encode_symbols(np.full(500, 9), 256, model=model)
        assert coded.params[1] > 0 and np.array_equal(decode_symbols(coded), np.full(500, 9))


def test_low_entropy_tensors_are_padded_to_the_count_limit() -> None:
    big = np.full(200_000, 3)
    coded = encode_symbols(big, 256)
    assert coded.words.size > 0 and (coded.words == 0).all()  # padding only
    assert max_symbols(coded.model, 256, coded.params, coded.words.size) >= big.size
    assert np.array_equal(decode_symbols(coded), big)
    sparse = np.zeros(100_000, np.int64)
    sparse[::997] = 1
    coded = encode_symbols(sparse, 256)
    assert coded.count <= FREE_SYMBOLS + 64 * coded.words.size
    assert np.array_equal(decode_symbols(coded), sparse)


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        encode_symbols(np.array([0, 256]), 256)
    with pytest.raises(ValueError):
        encode_symbols(np.array([-1, 2]), 256)
    with pytest.raises(ValueError):
        encode_symbols(np.array([0.5]), 256)
    with pytest.raises(ValueError):
        encode_symbols(np.array([0]), 1)
    with pytest.raises(ValueError):
        encode_symbols(np.array([0, 1]), 4, model="cauchy")


@pytest.fixture(scope="module")
def samples() -> dict[str, CodedSymbols]:
    symbols = quantized("laplace", 4000, 7)
    return {m: encode_symbols(symbols, 256, model=m) for m in MODELS}


def _bad(coded: CodedSymbols, **changes: object) -> None:
    with pytest.raises(BitstreamError):
        decode_symbols(dataclasses.replace(coded, **changes))


def test_decode_rejects_corrupt_fields(samples: dict[str, CodedSymbols]) -> None:
    cat, lap, gau = samples["categorical"], samples["laplace"], samples["gaussian"]
    f32 = lambda *v: np.array(v, np.float32)  # noqa: E731
    for c in samples.values():
        _bad(c, model="cauchy")
        _bad(c, alphabet=1)
        _bad(c, alphabet=1 << 17)
        _bad(c, count=0)
        _bad(c, count=10**9)  # far more than the words can hold: refused before allocating
        _bad(c, count=c.count * 50)
        _bad(c, words=c.words[:2])
        _bad(c, words=c.words.astype(np.int64))
        _bad(c, params=c.params.astype(np.float64))
    table = cat.params.copy()
    for value in (np.nan, np.inf, -1.0):
        t = table.copy()
        t[3] = value
        _bad(cat, params=t)
    _bad(cat, params=np.concatenate([[np.float32(0)], np.zeros(5, np.float32)]))  # sums to zero
    _bad(cat, params=f32(0.5, 1, 1))  # table start not an integer
    _bad(cat, params=np.concatenate([f32(250), table[1:]]))  # table runs past the alphabet
    _bad(cat, params=f32(-1, 1, 1))
    _bad(cat, params=f32(3))  # empty table
    _bad(cat, params=np.ones(300, np.float32))  # longer than the alphabet
    for c in (lap, gau):
        _bad(c, params=f32(128, 0))
        _bad(c, params=f32(128, -2))
        _bad(c, params=f32(np.nan, 2))
        _bad(c, params=f32(128, np.inf))
        _bad(c, params=f32(300, 2))
        _bad(c, params=f32(-3, 2))
        _bad(c, params=f32(128, 2, 3))


def test_peaked_model_cannot_claim_huge_counts(samples: dict[str, CodedSymbols]) -> None:
    """A model with p_max ~ 1 carries ~0 bits per symbol: the ratio bound still limits the count."""
    peaked = CodedSymbols("categorical", 256, 10**8, np.array([0, 1e30, 1e-30], np.float32), np.ones(4, np.uint32))
    with pytest.raises(BitstreamError):
        decode_symbols(peaked)
    one = CodedSymbols("categorical", 256, FREE_SYMBOLS + 1, np.array([5, 1], np.float32), np.zeros(0, np.uint32))
    with pytest.raises(BitstreamError):
        check_coded(one)
    thin = CodedSymbols("gaussian", 256, 10**7, np.array([100, 2.0**-6], np.float32), np.ones(10, np.uint32))
    with pytest.raises(BitstreamError):
        check_coded(thin)


def test_random_words_decode_inside_the_alphabet_or_fail_cleanly(samples: dict[str, CodedSymbols]) -> None:
    rng = np.random.default_rng(11)
    failures = 0
    for c in samples.values():
        for _ in range(20):
            words = rng.integers(0, 2**32, c.words.size, dtype=np.uint32)
            try:
                out = decode_symbols(dataclasses.replace(c, words=words))
            except BitstreamError:  # the range decoder noticed words no encoder could produce
                failures += 1
                continue
            lo = int(c.params[0]) if c.model == "categorical" else 0
            hi = lo + c.params.size - 2 if c.model == "categorical" else 255
            assert out.shape == (c.count,) and out.min() >= lo and out.max() <= hi
    assert failures < 60
