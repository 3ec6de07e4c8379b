"""Entropy coding: exact round trips, model choice, coded size vs empirical entropy, strict decoding."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dnervcodec.compress.entropy import (
    FREE_SYMBOLS,
    MODELS,
    CodedSymbols,
    _fit_parametric,
    check_coded,
    check_stream,
    decode_stream,
    encode_stream,
    information_bits,
    decode_symbols,
    empirical_entropy_bits,
    encode_symbols,
    max_symbols,
    pack_counts,
    side_info_bits,
    unpack_counts,
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
    assert coded.params.dtype == np.float64 and coded.words.dtype == np.uint32
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
    forced = {m: encode_symbols(symbols, 256, model=m) for m in MODELS}
    ceiling = 1.02 * empirical_entropy_bits(symbols, 256)
    admissible = {m: c.total_bits for m, c in forced.items() if c.info_bits <= ceiling}
    assert chosen.total_bits == min(admissible.values())
    assert admissible[chosen.model] == chosen.total_bits


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
        assert coded.params[0, 1] > 0 and np.array_equal(decode_symbols(coded), np.full(500, 9))


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
    f64 = lambda *v: np.array(v, np.float64)  # noqa: E731
    for c in samples.values():
        _bad(c, model="cauchy")
        _bad(c, alphabet=1)
        _bad(c, alphabet=1 << 17)
        _bad(c, count=0)
        _bad(c, count=10**9)  # far more than the words can hold: refused before allocating
        _bad(c, count=c.count * 50)
        _bad(c, words=c.words[:2])
        _bad(c, words=c.words.astype(np.int64))
        _bad(c, params=c.params.astype(np.float32))
    table = cat.params.copy()
    for value in (np.nan, np.inf, -1.0):
        t = table.copy()
        t[3] = value
        _bad(cat, params=t)
    _bad(cat, params=np.concatenate([[0.0], np.zeros(5)]))  # sums to zero
    _bad(cat, params=f64(0.5, 1, 1))  # table start not an integer
    _bad(cat, params=np.concatenate([f64(250), table[1:]]))  # table runs past the alphabet
    _bad(cat, params=f64(-1, 1, 1))
    _bad(cat, params=f64(3))  # empty table
    _bad(cat, params=np.ones(300))  # longer than the alphabet
    _bad(cat, params=table.reshape(1, -1))  # a table is a vector
    _bad(cat, axis=0)  # and belongs to the whole tensor
    for c in (lap, gau):
        _bad(c, params=f64(128, 2))  # a vector instead of (mean, scale) rows
        _bad(c, params=f64(128, 0).reshape(1, 2))
        _bad(c, params=f64(128, -2).reshape(1, 2))
        _bad(c, params=f64(np.nan, 2).reshape(1, 2))
        _bad(c, params=f64(128, np.inf).reshape(1, 2))
        _bad(c, params=f64(300, 2).reshape(1, 2))
        _bad(c, params=f64(-3, 2).reshape(1, 2))
        _bad(c, params=f64(128, 2, 3).reshape(1, 3))
        _bad(c, params=np.tile(c.params, (2, 1)))  # two groups without a group axis
        _bad(c, params=np.tile(c.params, (4, 1)), axis=0)  # groups need the tensor's shape to be checked
        with pytest.raises(BitstreamError):
            decode_symbols(dataclasses.replace(c, params=np.tile(c.params, (3, 1)), axis=0), (4, 1000))
        with pytest.raises(BitstreamError):
            decode_symbols(dataclasses.replace(c, params=np.tile(c.params, (3, 1)), axis=1), (4000,))


def test_peaked_model_cannot_claim_huge_counts(samples: dict[str, CodedSymbols]) -> None:
    """A model with p_max ~ 1 carries ~0 bits per symbol: the ratio bound still limits the count."""
    peaked = CodedSymbols("categorical", 256, 10**8, np.array([0, 1e30, 1e-30]), np.ones(4, np.uint32))
    with pytest.raises(BitstreamError):
        decode_symbols(peaked)
    one = CodedSymbols("categorical", 256, FREE_SYMBOLS + 1, np.array([5.0, 1.0]), np.zeros(0, np.uint32))
    with pytest.raises(BitstreamError):
        check_coded(one)
    thin = CodedSymbols("gaussian", 256, 10**7, np.array([[100, 2.0**-6]]), np.ones(10, np.uint32))
    with pytest.raises(BitstreamError):
        check_coded(thin)
    # one sharp group among many wide ones makes the whole tensor's bound the sharp one's
    rows = np.tile([[100.0, 30.0]], (1000, 1))
    rows[7] = [100.0, 2.0**-6]
    grouped = CodedSymbols("gaussian", 256, 10**7, rows, np.ones(10, np.uint32), axis=0)
    with pytest.raises(BitstreamError):
        check_coded(grouped, (1000, 10**4))


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


# ---------------------------------------------------------------------------------------------- groups


def channel_symbols(seed: int = 3) -> np.ndarray:
    """[T, C, h, w] embedding-like symbols whose 8 channels differ in centre and spread (a mixture)."""
    rng = np.random.default_rng(seed)
    centres, spreads = rng.uniform(40, 215, 8), rng.uniform(3, 20, 8)
    x = rng.normal(centres[None, :, None, None], spreads[None, :, None, None], (60, 8, 2, 4))
    return np.clip(np.rint(x), 0, 255).astype(np.int64)


@pytest.mark.parametrize("model", ["laplace", "gaussian"])
@pytest.mark.parametrize("axis", [0, 1, 3])
def test_grouped_models_round_trip_in_c_order(model: str, axis: int) -> None:
    x = channel_symbols()
    coded = encode_symbols(x, 256, model=model, axes=(axis,))
    assert coded.axis == axis and coded.params.shape == (x.shape[axis], 2)
    assert np.array_equal(decode_symbols(coded, x.shape), x.reshape(-1))


def test_per_channel_models_beat_the_pooled_entropy_on_a_channel_mixture() -> None:
    x = channel_symbols()
    pooled = empirical_entropy_bits(x.reshape(-1), 256)
    whole = encode_symbols(x, 256, axes=(None,))
    chosen = encode_symbols(x, 256, axes=(None, 1))
    assert chosen.axis == 1 and chosen.model != "categorical"
    assert chosen.total_bits < whole.total_bits
    assert chosen.info_bits < pooled  # the channel models know what the pooled histogram mixes up
    assert side_info_bits(chosen) == 48 + 32 * 8  # axis, flags, row count; a float16 pair per channel


@pytest.mark.parametrize("entries", [300, 600])
def test_grouped_coding_is_chunked_the_same_way_on_both_sides(monkeypatch, entries: int) -> None:
    import dnervcodec.compress.entropy as entropy

    x = channel_symbols()
    whole = encode_symbols(x, 256, model="gaussian", axes=(1,))
    monkeypatch.setattr(entropy, "TABLE_CHUNK", entries)  # tables built one or two rows at a time
    chunked = encode_symbols(x, 256, model="gaussian", axes=(1,))
    assert chunked == whole and chunked.info_bits == pytest.approx(whole.info_bits, rel=1e-12)
    assert np.array_equal(decode_symbols(chunked, x.shape), x.reshape(-1))


def test_legacy_grouped_coding_is_chunked_the_same_way_on_both_sides(monkeypatch) -> None:
    import dnervcodec.compress.legacy as legacy

    x = channel_symbols()
    coded = dataclasses.replace(encode_symbols(x, 256, model="gaussian", axes=(1,)), portable=False, words=None)
    whole = encode_stream([(coded, x)])
    monkeypatch.setattr(legacy, "CHUNK_SYMBOLS", 37)  # chunks that cut through groups
    chunked = dataclasses.replace(coded, words=encode_stream([(coded, x)]))
    assert np.array_equal(chunked.words, whole)
    assert np.array_equal(decode_symbols(chunked, x.shape), x.reshape(-1))


def variant(model: str, x: np.ndarray, axis: int | None, per_group: bool, pinned: bool) -> CodedSymbols | None:
    """One parametric variant with its own words (a one-tensor stream), or None where it does not apply."""
    params = _fit_parametric(model, x, 256, axis, per_group, pinned)
    if params is None:
        return None
    coded = CodedSymbols(model, 256, x.size, params, None, axis, pinned)
    return dataclasses.replace(coded, words=encode_stream([(coded, x)]))


def per_channel_weight(channels: int, per_channel: int, seed: int = 0) -> np.ndarray:
    """Symbols of a conv weight quantized per output channel: every channel holds a 0 and a 255."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, (channels, per_channel)) * rng.uniform(0.5, 2, (channels, 1))
    symbols, _ = quantize(w.astype(np.float32), 8, 0)
    return symbols.reshape(channels, per_channel)


@pytest.mark.parametrize("model", ["laplace", "gaussian"])
@pytest.mark.parametrize("axis", [None, 0])
def test_pinned_extremes_round_trip(model: str, axis: int | None) -> None:
    x = per_channel_weight(40, 9)
    coded = encode_symbols(x, 256, model=model, axes=(axis,))
    assert np.array_equal(decode_symbols(coded, x.shape), x.reshape(-1))
    for per_group in ((False, True) if axis is not None else (False,)):
        pinned = variant(model, x, axis, per_group, True)
        assert np.array_equal(decode_symbols(pinned, x.shape), x.reshape(-1))


def test_pinned_extremes_pay_on_few_values_per_channel() -> None:
    """Min/max quantization puts a 0 and a 255 in every channel: sending their positions beats coding
    them deep in a bell's tails when channels are short (the first NeRV block has 15 values a channel)."""
    x = per_channel_weight(300, 15)
    plain = encode_symbols(x, 256, axes=(None,))
    chosen = encode_symbols(x, 256, axes=(None, 0))
    assert chosen.pinned and chosen.axis == 0
    assert chosen.total_bits < 0.99 * plain.total_bits  # measured: 1.3% smaller
    assert chosen.info_bits <= 1.0 * empirical_entropy_bits(x.reshape(-1), 256)


def test_pinning_needs_both_extremes_in_every_group() -> None:
    x = per_channel_weight(20, 9)
    x[3] = np.clip(x[3], 1, 254)  # one channel without a 0 or a 255
    assert variant("gaussian", x, 0, False, True) is None
    assert not encode_symbols(x, 256, axes=(None, 0)).pinned
    assert variant("gaussian", per_channel_weight(20, 2), 0, False, True) is None  # too short


def test_tiny_tensors_take_the_raw_bits_when_a_table_would_cost_more() -> None:
    x = np.array([0, 255, 17, 90, 3])
    table = encode_symbols(x, 256, model="categorical")  # at the entropy, but the table costs more than it saves
    assert table.info_bits == pytest.approx(5 * np.log2(5), rel=1e-4)  # 251 empty entries get 2^-24 each
    coded = encode_symbols(x, 256)  # 70% above the entropy, yet the cheapest in total: the raw bits
    assert coded.model == "uniform" and coded.params.size == 0 and side_info_bits(coded) == 0
    assert coded.total_bits == 40 < table.total_bits
    assert np.array_equal(decode_symbols(coded), x) and np.array_equal(decode_symbols(table), x)


def weight_like(shape: tuple[int, ...], bits: int, seed: int) -> np.ndarray:
    """Symbols of a min/max-quantized weight whose output channels differ in scale."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, shape) * rng.uniform(0.5, 2, (shape[0],) + (1,) * (len(shape) - 1))
    return quantize(w.astype(np.float32), bits, 0 if len(shape) > 1 else None)[0].reshape(shape)


@pytest.mark.parametrize("bits", range(2, 17))
def test_no_tensor_costs_more_than_its_raw_bits(bits: int) -> None:
    """Issue 17: at 12 to 16 bits every tensor went categorical, with ~65 kbit of table each (a 10k-value
    model became 180 KB for 20 KB of raw values). Coded size <= count * bits + the coder's flush."""
    for shape in [(3,), (12,), (300,), (16, 9, 3, 3), (40, 100)]:
        x = weight_like(shape, bits, seed=bits)
        coded = encode_symbols(x, 1 << bits, axes=(None, 0) if len(shape) > 1 else (None,))
        assert coded.total_bits <= x.size * bits + 1e-6, (shape, coded.model)
        assert coded.payload_bits + side_info_bits(coded) <= x.size * bits + 64, (shape, coded.model)
        assert np.array_equal(decode_symbols(coded, shape), x.reshape(-1))


def test_bad_pinned_or_uniform_fields_are_refused() -> None:
    x = per_channel_weight(40, 9)
    pinned = variant("gaussian", x, 0, False, True)
    words = pinned.words
    with pytest.raises(BitstreamError):  # groups of 2 cannot be pinned
        decode_symbols(dataclasses.replace(pinned, count=80), (40, 2))
    with pytest.raises(BitstreamError):
        decode_symbols(dataclasses.replace(pinned, pinned=1), x.shape)
    uni = encode_symbols(np.array([1, 2, 3]), 256, model="uniform")
    for changes in (dict(params=np.ones(2)), dict(axis=0), dict(pinned=True)):
        with pytest.raises(BitstreamError):
            decode_symbols(dataclasses.replace(uni, **changes), (3,))
    rng = np.random.default_rng(2)
    for _ in range(30):  # random words under a pinned model: symbols in the alphabet, or a clean error
        damaged = dataclasses.replace(pinned, words=rng.integers(0, 2**32, words.size, dtype=np.uint32))
        try:
            out = decode_symbols(damaged, x.shape)
        except BitstreamError:
            continue
        assert out.shape == (x.size,) and out.min() >= 0 and out.max() <= 255


# ---------------------------------------------------------------------------------------------- tables


@pytest.mark.parametrize("seed", range(6))
def test_table_code_round_trips(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    kind = seed % 3
    if kind == 0:
        counts = rng.poisson(rng.uniform(0.1, 500), n)
    elif kind == 1:  # a bell with a huge spike: the escape path
        counts = np.rint(50 * np.exp(-np.linspace(-3, 3, n) ** 2)).astype(np.int64)
        counts[n // 2] += 10**7
    else:
        counts = (rng.random(n) < 0.05) * rng.integers(1, 5, n)  # sparse
    counts[0] = max(counts[0], 1)
    data = pack_counts(counts)
    assert np.array_equal(unpack_counts(data, n, int(counts.sum())), counts)
    assert len(data) <= 8 + n * 5  # a few bits an entry; an escaped count costs tens of bits, not millions


def test_table_costs_a_few_bits_an_entry_not_32() -> None:
    counts = np.random.default_rng(0).poisson(20, 256)
    assert 8 * len(pack_counts(counts)) < 7 * 256


def test_damaged_tables_are_refused() -> None:
    counts = np.random.default_rng(1).poisson(30, 200)
    counts[0] = 1
    data, total = pack_counts(counts), int(counts.sum())
    for bad in (data[:-1], data[: len(data) // 2], b"", data + b"\x80", b"\x00" * len(data), b"\xff" * len(data)):
        with pytest.raises(BitstreamError):
            unpack_counts(bad, 200, total)
    for n, t in ((201, total), (199, total), (200, total - 1), (200, total + 1), (10**6, total), (0, total)):
        with pytest.raises(BitstreamError):
            unpack_counts(data, n, t)
    with pytest.raises(ValueError):
        pack_counts(np.array([1, -1]))


# ---------------------------------------------------------------------------------------------- streams


def test_shared_stream_codes_every_tensor_at_its_entropy_with_one_flush() -> None:
    """Format 3: a segment's tensors share one stream, so tiny tensors pay no per-tensor flush."""
    rng = np.random.default_rng(11)
    tensors = [np.array([0, 255, 17, 90, 3]), rng.integers(0, 256, 12), per_channel_weight(40, 9),
               channel_symbols(), np.full(5000, 7), quantized("laplace", 5_000, 1)]
    coded = [encode_symbols(x, 256, axes=(None, 0) if x.ndim > 1 else (None,)) for x in tensors]
    items = [(dataclasses.replace(c, words=None), x) for c, x in zip(coded, tensors)]
    words = encode_stream(items)
    tensor_bits = [information_bits(c, x) for c, x in items]
    for (c, x), bits in zip(items, tensor_bits):  # at the entropy, or the raw bits where those cost less
        assert bits <= (8 * x.size if c.model == "uniform" else 1.02 * empirical_entropy_bits(x, 256) + 1e-9)
    assert [c.model for c, _ in items[:2]] == ["uniform", "uniform"]  # a table would outweigh 5 or 12 values
    assert 0 <= 32 * words.size - sum(tensor_bits) <= 64  # one flush for the whole stream
    out = decode_stream(words, [(c, x.shape) for c, x in items])
    assert all(np.array_equal(o, x.reshape(-1)) for o, x in zip(out, tensors))


def test_stream_claims_are_bounded_by_its_size() -> None:
    x = quantized("gaussian", 3_000, 0)
    c = dataclasses.replace(encode_symbols(x, 256, model="categorical"), words=None)
    words = encode_stream([(c, x)])
    check_stream([(c, x.shape)], words.size)
    huge = dataclasses.replace(c, count=1 << 27)
    with pytest.raises(BitstreamError, match="cannot fit|need at least"):
        decode_stream(words, [(huge, (1 << 27,))])
    const = dataclasses.replace(encode_symbols(np.full(10, 3), 256), words=None, count=1 << 27)
    with pytest.raises(BitstreamError):  # zero-information tables still count against the ratio bound
        check_stream([(const, (1 << 27,))], 0)
    big = np.full(300_000, 3)
    cb = dataclasses.replace(encode_symbols(big, 256), words=None)
    padded = encode_stream([(cb, big)])
    assert padded.size > 0 and np.array_equal(decode_stream(padded, [(cb, big.shape)])[0], big)
    rng = np.random.default_rng(4)
    for _ in range(50):  # random words: symbols inside the alphabet, or a clean error
        junk = rng.integers(0, 2**32, words.size, dtype=np.uint32)
        try:
            out = decode_stream(junk, [(c, x.shape)])[0]
        except BitstreamError:
            continue
        assert out.min() >= 0 and out.max() <= 255
