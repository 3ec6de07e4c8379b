"""The .dnerv container: round trips, order and version rules, limits, and a deterministic corruption fuzz."""

from __future__ import annotations

import math
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from dnervcodec.bitstream import (
    FORMAT_VERSION,
    SIGNATURE,
    CodedTensor,
    Container,
    Segment,
    chunk_sizes,
    decode_segment,
    encode_segment,
    encode_tensor,
    read_container,
    shared_stream,
    write_container,
)
from dnervcodec.compress.entropy import CodedSymbols, pack_counts
from dnervcodec.errors import BitstreamError, ConfigError

PRE = len(SIGNATURE) + 4


# ---------------------------------------------------------------------------------------------- helpers


def make_arrays(seed: int) -> dict[str, tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    return {
        "dec.0.conv.weight": (rng.normal(0, 0.1, (8, 4, 3, 3)).astype(np.float32), "weight"),  # per channel
        "dec.0.conv.bias": (rng.normal(0, 0.1, (8,)).astype(np.float32), "weight"),
        "dec.1.gain": (np.full((4,), 1.5, np.float32), "weight"),  # constant: one-entry table, no words
        "dec.1.conv.weight": (rng.choice([-0.2, 0.0, 0.05, 0.3], size=(6, 8, 1, 1)).astype(np.float32), "weight"),
        "embed": (rng.laplace(0, 1, (4, 2, 8, 16)).astype(np.float32), "embedding"),  # big enough for a bell
    }


def make_container() -> tuple[Container, dict]:
    segments, originals = [], {}
    for s in range(2):
        tensors = {}
        for name, (arr, kind) in make_arrays(s).items():
            tensors[name] = encode_tensor(name, arr, 8, kind)
            originals[(s, name)] = arr
        segments.append(Segment(meta={"frames": [4 * s, 4 * s + 4], "seed": s}, tensors=tensors))
    header = {
        "video": {"T": 8, "H": 32, "W": 64, "fps": 25.0, "crop": None},
        "config": {"widths": [8, 6, 4], "strides": [2, 2], "act": "gelu"},
        "coding": {"bits": 8, "ünïcode": "ok"},
    }
    return Container(header=header, segments=segments, ancillary={"timings": b'{"fit": 1.5}'}), originals


def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Test-side chunk parser (independent of the module): [(type, data)] of a valid file."""
    out, pos = [], PRE
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]))
        pos += 12 + n
    return out


def chunk(ctype: bytes, body: bytes, crc: bool = True) -> bytes:
    c = zlib.crc32(body, zlib.crc32(ctype)) if crc else 0
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", c)


def build(chunks: list[tuple[bytes, bytes]], version: tuple[int, int] = FORMAT_VERSION) -> bytes:
    return SIGNATURE + struct.pack(">HH", *version) + b"".join(chunk(t, d) for t, d in chunks)


def parse_tnsr(body: bytes) -> dict:
    """Fields of a TNSR chunk per docs/bitstream.md."""
    f: dict = {}
    p = 0

    def take(fmt: str) -> tuple:
        nonlocal p
        v = struct.unpack_from(fmt, body, p)
        p += struct.calcsize(fmt)
        return v

    f["segment"], f["index"], name_len = take(">IIH")
    f["name"] = body[p : p + name_len]
    p += name_len
    (ndim,) = take(">B")
    f["dims"] = list(take(f">{ndim}I"))
    f["bits"], f["axis"], f["nq"] = take(">BBI")
    f["scale"] = body[p : p + 2 * f["nq"]]  # float16
    p += 2 * f["nq"]
    f["offset"] = body[p : p + 2 * f["nq"]]
    p += 2 * f["nq"]
    f["model"], f["alphabet"], f["count"] = take(">BII")
    if f["model"] == 0:  # categorical: table start, entries, bytes of Rice-coded counts
        f["lo"], f["n"], f["nbytes"] = take(">III")
        f["table"] = body[p : p + f["nbytes"]]
        p += f["nbytes"]
    elif f["model"] in (1, 2):  # laplace/gaussian: group axis, flags, rows, float16 (mean, scale) rows
        f["gaxis"], f["flags"], f["groups"] = take(">BBI")
        f["rows"] = body[p : p + 4 * f["groups"]]
        p += 4 * f["groups"]
    if p < len(body):  # format 1/2: the tensor's own words (format 3 keeps them in the CODE chunk)
        (f["nwords"],) = take(">I")
        f["words"] = body[p : p + 4 * f["nwords"]]
        p += 4 * f["nwords"]
    assert p == len(body)
    return f


def build_tnsr(f: dict) -> bytes:
    return b"".join(
        [
            struct.pack(">IIH", f["segment"], f["index"], len(f["name"])),
            f["name"],
            struct.pack(">B", len(f["dims"])),
            struct.pack(f">{len(f['dims'])}I", *f["dims"]),
            struct.pack(">BBI", f["bits"], f["axis"], f["nq"]),
            f["scale"],
            f["offset"],
            struct.pack(">BII", f["model"], f["alphabet"], f["count"]),
            model_fields(f),
            struct.pack(">I", f["nwords"]) + f["words"] if "nwords" in f else b"",
        ]
    )


def build_code(segment: int, nwords: int, words: bytes) -> bytes:
    """A CODE chunk's data: segment index, word count, words (which may disagree with the count)."""
    return struct.pack(">II", segment, nwords) + words


def model_fields(f: dict) -> bytes:
    if "lo" in f:
        return struct.pack(">III", f["lo"], f["n"], f["nbytes"]) + f["table"]
    if "gaxis" in f:
        return struct.pack(">BBI", f["gaxis"], f["flags"], f["groups"]) + f["rows"]
    return b""  # uniform


def model_claims(f: dict) -> list[dict]:
    """Oversized or inconsistent entropy-model fields for this tensor's model."""
    if "lo" in f:
        return [dict(n=f["n"] + 1), dict(n=1 << 30), dict(nbytes=f["nbytes"] + 1), dict(nbytes=1 << 30),
                dict(lo=256), dict(n=0)]
    if "gaxis" in f:
        return [dict(groups=f["groups"] + 1), dict(groups=1 << 30), dict(gaxis=7), dict(flags=0x80),
                dict(gaxis=0, groups=2)]
    return [dict(model=1), dict(model=0)]  # uniform: claim a model whose parameters are not there


def as_written(c: Container) -> Container:
    """The container as the writer stores it: each segment's tensors in one shared stream."""
    return Container(header=c.header, segments=[shared_stream(s) for s in c.segments], ancillary=c.ancillary)


@pytest.fixture(scope="module")
def valid() -> tuple[Container, bytes, dict]:
    c, originals = make_container()
    return as_written(c), write_container(c), originals


def read_all(data: bytes) -> Container:
    """Full decode: parse, then entropy-decode and dequantize every tensor."""
    c = read_container(data)
    for seg in c.segments:
        arrays = decode_segment(seg)
        for name, t in seg.tensors.items():
            assert arrays[name].shape == t.quant.shape and arrays[name].dtype == np.float32
    return c


# ---------------------------------------------------------------------------------------------- round trips


def test_round_trip(valid: tuple[Container, bytes, dict]) -> None:
    c, data, originals = valid
    assert data.startswith(SIGNATURE) and len(SIGNATURE) == 9
    r = read_container(data)
    assert r == c
    assert list(r.segments[0].tensors) == list(c.segments[0].tensors)  # insertion order kept
    models = {t.coded.model for seg in r.segments for t in seg.tensors.values()}
    assert "categorical" in models and models & {"laplace", "gaussian"}
    for s, seg in enumerate(r.segments):
        arrays = decode_segment(seg)
        for name, t in seg.tensors.items():
            out = arrays[name]
            ref = originals[(s, name)]
            step = t.quant.scale.max()
            assert out.shape == ref.shape and np.abs(out - ref).max() <= step / 2 + 1e-6
    assert write_container(r) == data  # deterministic bytes


def test_encode_segment_codes_the_same_stream_as_rewriting_per_tensor_words() -> None:
    """The encoder's direct path (no per-tensor words) and the writer's conversion agree byte for byte."""
    arrays = make_arrays(0)
    direct = encode_segment({"s": 0}, arrays, 8)
    converted = shared_stream(Segment({"s": 0}, {n: encode_tensor(n, a, 8, k) for n, (a, k) in arrays.items()}))
    assert direct == converted and all(t.coded.words is None for t in direct.tensors.values())


def test_chunk_sizes_add_up(valid: tuple[Container, bytes, dict]) -> None:
    _, data, _ = valid
    sizes = chunk_sizes(data)
    assert sum(n for _, _, n in sizes) == len(data)
    assert sizes[0] == ("SIGNATURE", "", PRE) and sizes[1][0] == "HEAD" and sizes[-1] == ("IEND", "", 12)
    assert [n for t, n, _ in sizes if t == "TNSR"] == 2 * list(make_arrays(0))
    assert ("tEXt", "timings") in {(t, n) for t, n, _ in sizes}


def test_empty_container_and_segment() -> None:
    c = Container(header={}, segments=[], ancillary={})
    assert read_container(write_container(c)) == c
    c = Container(header={"a": 1}, segments=[Segment(meta={}, tensors={})], ancillary={})
    r = read_container(write_container(c))
    assert r == as_written(c) and r.segments[0].stream.size == 0


def test_scalar_and_16_bit_tensors() -> None:
    t0 = encode_tensor("scalar", np.array(3.25, np.float32), 8, "weight")
    t1 = encode_tensor("deep", np.linspace(-1, 1, 5000, dtype=np.float32).reshape(50, 100), 16, "weight")
    c = Container(header={}, segments=[Segment(meta={}, tensors={"scalar": t0, "deep": t1})], ancillary={})
    r = read_container(write_container(c))
    arrays = decode_segment(r.segments[0])
    assert r == as_written(c) and arrays["scalar"] == np.float32(3.25)
    assert arrays["deep"].shape == (50, 100)


def test_encode_tensor_rejects_bad_kind_and_bits() -> None:
    with pytest.raises(ConfigError):
        encode_tensor("x", np.zeros(3, np.float32), 8, "bias")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        encode_tensor("x", np.zeros(3, np.float32), 17, "weight")


def test_writer_rejects_what_the_reader_would_refuse(valid: tuple[Container, bytes, dict]) -> None:
    c, _, _ = valid
    t = c.segments[0].tensors["dec.0.conv.bias"]
    with pytest.raises(ValueError):
        write_container(Container(header={"x": float("nan")}, segments=[], ancillary={}))
    with pytest.raises(ValueError):
        write_container(Container(header={"x": object()}, segments=[], ancillary={}))
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ValueError):
        write_container(Container(header=deep, segments=[], ancillary={}))
    with pytest.raises(ValueError):
        write_container(Container(header={}, segments=[Segment({}, {"other": t})], ancillary={}))
    with pytest.raises(ValueError):
        write_container(Container(header={}, segments=[], ancillary={"": b"x"}))
    with pytest.raises(ValueError):
        write_container(Container(header={}, segments=[], ancillary={"a\0b": b"x"}))
    broken = CodedTensor(t.name, t.quant, CodedSymbols(t.coded.model, 256, 10**9, t.coded.params, t.coded.words))
    with pytest.raises(ValueError):
        write_container(Container(header={}, segments=[Segment({}, {t.name: broken})], ancillary={}))


# ---------------------------------------------------------------------------------------------- rules


def test_version_rules(valid: tuple[Container, bytes, dict]) -> None:
    c, data, _ = valid
    chunks = split_chunks(data)
    with pytest.raises(BitstreamError, match="newer dnervcodec"):
        read_container(build(chunks, (FORMAT_VERSION[0] + 1, 0)))
    with pytest.raises(BitstreamError):
        read_container(build(chunks, (0, 9)))
    assert read_container(build(chunks, (FORMAT_VERSION[0], 7))) == c  # minor versions only add optional things


def test_signature_damage() -> None:
    c, _ = make_container()
    data = write_container(c)
    with pytest.raises(BitstreamError, match="text-mode"):
        read_container(data[:5] + data[5:].replace(b"\r\n", b"\n", 1))
    with pytest.raises(BitstreamError, match="text-mode"):
        read_container(data[:7] + data[7:].replace(b"\n", b"\r\n", 1))
    with pytest.raises(BitstreamError, match="not a .dnerv"):
        read_container(b"\x89PNG\r\n\x1a\n" + data[8:])
    with pytest.raises(BitstreamError, match="not a .dnerv"):
        read_container(b"")


def test_critical_and_ancillary_chunks(valid: tuple[Container, bytes, dict]) -> None:
    c, data, _ = valid
    chunks = split_chunks(data)
    for pos in range(1, len(chunks)):  # unknown ancillary chunks are skipped anywhere after HEAD
        assert read_container(build(chunks[:pos] + [(b"zzZz", b"future")] + chunks[pos:])) == c
    for pos in range(0, len(chunks)):
        with pytest.raises(BitstreamError):
            read_container(build(chunks[:pos] + [(b"ZzZz", b"future")] + chunks[pos:]))
    with pytest.raises(BitstreamError, match="upgrade"):
        read_container(build(chunks[:2] + [(b"NEWC", b"")] + chunks[2:]))
    with pytest.raises(BitstreamError):  # even an ancillary chunk must not precede HEAD
        read_container(build([(b"zzzz", b"")] + chunks))
    with pytest.raises(BitstreamError):  # chunk type letters only
        read_container(build(chunks[:2] + [(b"z1zz", b"")] + chunks[2:]))


def test_order_rules(valid: tuple[Container, bytes, dict]) -> None:
    c, data, _ = valid
    chunks = split_chunks(data)
    types = [t for t, _ in chunks]
    assert types[0] == b"HEAD" and types[-1] == b"IEND"
    for i in range(len(chunks)):  # repeating any chunk is an error
        for j in range(len(chunks) + 1):
            with pytest.raises(BitstreamError):
                read_container(build(chunks[:j] + [chunks[i]] + chunks[j:]))
    for i in range(len(chunks)):  # dropping a chunk is an error, except for an ancillary one
        dropped = chunks[:i] + chunks[i + 1 :]
        if types[i] == b"tEXt":
            assert read_container(build(dropped)).ancillary == {}
        else:
            with pytest.raises(BitstreamError):
                read_container(build(dropped))
    for i in range(len(chunks)):  # swapping two chunks is an error unless it only moves ancillary data
        for j in range(i + 1, len(chunks)):
            swapped = list(chunks)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            if chunks[i][1] == chunks[j][1]:
                continue
            try:
                assert read_container(build(swapped)) == c and b"tEXt" in (types[i], types[j])
            except BitstreamError:
                pass
    with pytest.raises(BitstreamError):  # trailing bytes after IEND
        read_container(data + b"\0")


def test_json_rules(valid: tuple[Container, bytes, dict]) -> None:
    _, data, _ = valid
    chunks = split_chunks(data)
    n_seg = chunks[0][1][:4]
    bad = [
        b"[1, 2]",
        b'"text"',
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": 1, "a": 2}',
        b"{" * 10 + b"}" * 10,
        b'{"a":' * 40 + b"1" + b"}" * 40,
        b"[" * 100000 + b"]" * 100000,
        b'{"a": "\xff"}',
        b'{"a": 1' + b"0" * 5000 + b"}",
        b"",
    ]
    for text in bad:
        with pytest.raises(BitstreamError):
            read_container(build([(b"HEAD", n_seg + text)] + chunks[1:]))
    with pytest.raises(BitstreamError):
        read_container(build([(b"HEAD", n_seg + b'{"a": "' + b"x" * (1 << 20) + b'"}')] + chunks[1:]))


# ---------------------------------------------------------------------------------------------- limits


def _with_tensor(data: bytes, which: int, **fields: object) -> bytes:
    """Rewrite the which-th TNSR chunk with some fields replaced, re-CRC'd so it reaches the semantic checks."""
    chunks = split_chunks(data)
    idx = [i for i, (t, _) in enumerate(chunks) if t == b"TNSR"][which]
    f = parse_tnsr(chunks[idx][1])
    f.update(fields)
    chunks[idx] = (b"TNSR", build_tnsr(f))
    return build(chunks)


def test_huge_claims_fail_before_allocating(valid: tuple[Container, bytes, dict]) -> None:
    _, data, _ = valid
    f0 = parse_tnsr(split_chunks(data)[3][1])
    tnsrs = [parse_tnsr(b) for t, b in split_chunks(data) if t == b"TNSR"]
    nq = f0["nq"]
    cases = [
        dict(dims=[1000, 1000, 1000], count=10**9, axis=0xFF, nq=1, scale=f0["scale"][:4], offset=f0["offset"][:4]),
        dict(dims=[1 << 14, 1 << 14], count=1 << 28, axis=0xFF, nq=1, scale=f0["scale"][:4], offset=f0["offset"][:4]),
        dict(dims=[1 << 24, 1 << 24], count=1 << 28),
        dict(dims=[2] * 9),
        dict(dims=[nq, 0, 4, 3, 3]),
        dict(count=10**9),
        dict(count=0),
        dict(nq=1 << 30),
        dict(alphabet=(1 << 32) - 1),
        dict(alphabet=1 << 17, bits=17),
        dict(bits=1),
        dict(axis=7),
        dict(model=3, which=next(i for i, f in enumerate(tnsrs) if f["model"] != 3)),  # uniform, params left over
        dict(model=5),
        dict(index=5),
        dict(segment=1),
        dict(name=b""),
        dict(name=b"\xff\xfe"),
        dict(name=b"a\0b"),
        dict(scale=struct.pack(">e", float("nan")) * nq),
        dict(scale=struct.pack(">e", -1.0) * nq),
        dict(offset=struct.pack(">e", float("inf")) * nq),
    ]
    # The constant tensor (one-entry table, no words) may not claim more symbols than the free allowance.
    const = dict(which=2, dims=[1 << 20], count=1 << 20)
    chunks = split_chunks(data)
    tnsr = [parse_tnsr(b) for t, b in chunks if t == b"TNSR"]
    model_cases = [dict(which=w, **claim) for w, f in enumerate(tnsr[:5]) for claim in model_claims(f)]
    assert {f["model"] for f in tnsr[:5]} >= {0, 1} or {f["model"] for f in tnsr[:5]} >= {0, 2}
    damaged = [_with_tensor(data, int(f.pop("which", 0)), **f) for f in cases + [const] + model_cases]  # type: ignore[call-overload]
    damaged += code_claims(data)
    for bad in damaged:
        tracemalloc.start()
        try:
            with pytest.raises(BitstreamError):
                read_all(bad)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * len(bad) + (1 << 20), peak


def code_claims(data: bytes) -> list[bytes]:
    """Damaged CODE chunks, re-CRC'd: huge or wrong word counts, a wrong segment, words cut or removed."""
    chunks = split_chunks(data)
    out = []
    for i in [k for k, (t, _) in enumerate(chunks) if t == b"CODE"]:
        segment, nwords = struct.unpack(">II", chunks[i][1][:8])
        words = chunks[i][1][8:]
        for body in [build_code(segment, 1 << 30, words), build_code(segment, (1 << 32) - 1, words),
                     build_code(segment, nwords + 1, words), build_code(segment, nwords - 1, words),
                     build_code(segment + 1, nwords, words), build_code(segment, 0, b""),
                     build_code(segment, nwords // 2, words[: 4 * (nwords // 2)]), words[:6]]:
            mutated = list(chunks)
            mutated[i] = (b"CODE", body)
            out.append(build(mutated))
    return out


def test_peaked_model_with_huge_count_fails_before_allocating(valid: tuple[Container, bytes, dict]) -> None:
    _, data, _ = valid
    table = pack_counts(np.array([(1 << 28) - 1, 1]))  # categorical, p_max ~ 1: ~0 bits per symbol
    f = {k: v for k, v in parse_tnsr(split_chunks(data)[3][1]).items()
         if k not in ("gaxis", "flags", "groups", "rows", "lo", "n", "nbytes", "table")}
    f.update(dims=[1 << 14, 1 << 14], count=1 << 28, axis=0xFF, nq=1, scale=struct.pack(">e", 0.01),
             offset=struct.pack(">e", 0.0), model=0, lo=0, n=2, nbytes=len(table), table=table)
    chunks = split_chunks(data)
    chunks[3] = (b"TNSR", build_tnsr(f))
    bad = build(chunks)
    tracemalloc.start()
    try:
        with pytest.raises(BitstreamError, match="cannot fit"):
            read_all(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * len(bad) + (1 << 20)


# ---------------------------------------------------------------------------------------------- fuzz

U32S = [0, 1, 2, 255, 256, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 24, 1 << 28, 10**9]
F32S = [float("nan"), float("inf"), -float("inf"), -1.0, 0.0, 1e30, 3.4e38, 1e-45, 0.5, 65535.0]


def corruptions(data: bytes, seed: int = 1234, targeted: bool = True) -> list[tuple[str, bytes]]:
    """At least 10,000 deterministic damaged variants of a valid file, labelled by kind.

    `targeted` adds field-level edits made with the TNSR and CODE parsers of format 3 (off for older files).
    """
    rng = np.random.default_rng(seed)
    chunks = split_chunks(data)
    n = len(data)
    cases: list[tuple[str, bytes]] = []
    # truncation at every length
    cases += [("truncate", data[:k]) for k in range(n)]
    # random bit flips (1 to 8 bits)
    for i in range(4000):
        b = bytearray(data)
        for _ in range(1 if i < 3000 else int(rng.integers(2, 9))):
            pos = int(rng.integers(n))
            b[pos] ^= 1 << int(rng.integers(8))
        cases.append(("flip", bytes(b)))
    # random byte overwrites
    for _ in range(1000):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            b[int(rng.integers(n))] = int(rng.integers(256))
        cases.append(("byte", bytes(b)))
    # bad chunk lengths (the length is not covered by the CRC)
    starts, pos = [], PRE
    for _, body in chunks:
        starts.append((pos, len(body)))
        pos += 12 + len(body)
    for start, length in starts:
        for v in [0, 1, length - 1, length + 1, length + 4, n, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]:
            b = bytearray(data)
            b[start : start + 4] = struct.pack(">I", max(v, 0))
            cases.append(("length", bytes(b)))
    for _ in range(400):
        start, _ = starts[int(rng.integers(len(starts)))]
        b = bytearray(data)
        b[start : start + 4] = struct.pack(">I", int(rng.integers(0, 2**32)))
        cases.append(("length", bytes(b)))
    # semantic damage inside a chunk, re-CRC'd so that only the field checks can catch it
    for _ in range(3000):
        i = int(rng.integers(len(chunks) - 1))
        ctype, body = chunks[i]
        body = bytearray(body)
        if not body:
            continue
        kind = int(rng.integers(4))
        if kind == 0:
            value = bytes([int(rng.integers(256))])
        elif kind == 1:
            value = struct.pack(">I", U32S[int(rng.integers(len(U32S)))])
        elif kind == 2:
            value = struct.pack(">f", F32S[int(rng.integers(len(F32S)))])
        else:
            value = struct.pack(">H", int(rng.integers(65536)))
        at = int(rng.integers(len(body)))
        body[at : at + len(value)] = value
        mutated = list(chunks)
        mutated[i] = (ctype, bytes(body))
        cases.append(("recrc", build(mutated)))
    # targeted huge shapes / counts / lengths, re-CRC'd
    tnsr = [i for i, (t, _) in enumerate(chunks) if t == b"TNSR"] if targeted else []
    for i in tnsr:
        f = parse_tnsr(chunks[i][1])
        for fields in [
            dict(dims=[1000, 1000, 1000], count=10**9),
            dict(dims=[1 << 14, 1 << 14], count=1 << 28, axis=0xFF, nq=1, scale=b"\0" * 4, offset=b"\0" * 4),
            dict(count=f["count"] * 1000),
            dict(nq=f["nq"] + 1),
            dict(dims=f["dims"] + [1] * 8),
            *model_claims(f),
        ]:
            g = dict(f)
            g.update(fields)
            mutated = list(chunks)
            mutated[i] = (b"TNSR", build_tnsr(g))
            cases.append(("huge", build(mutated)))
    if targeted:
        cases += [("code", bad) for bad in code_claims(data)]
    # versions
    major = FORMAT_VERSION[0]
    for v in [(0, 0), (0, 1), (major + 1, 0), (major + 2, 1), (255, 0), (65535, 65535)]:
        cases.append(("major", build(chunks, v)))
    for v in [(major, 1), (major, 9), (major, 65535)]:
        cases.append(("minor", build(chunks, v)))
    # unknown critical chunks, repeated chunks, reordered chunks
    for pos in range(len(chunks) + 1):
        cases.append(("critical", build(chunks[:pos] + [(b"QQQQ", b"x")] + chunks[pos:])))
        for i in range(len(chunks)):
            cases.append(("repeat", build(chunks[:pos] + [chunks[i]] + chunks[pos:])))
    for _ in range(300):
        perm = rng.permutation(len(chunks))
        cases.append(("reorder", build([chunks[k] for k in perm])))
    # garbage
    for _ in range(300):
        cases.append(("garbage", rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()))
    for _ in range(300):
        junk = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        cases.append(("garbage", data[:PRE] + junk))
    for _ in range(100):
        cases.append(("trailing", data + rng.integers(0, 256, int(rng.integers(1, 100)), dtype=np.uint8).tobytes()))
    return cases


MUST_FAIL = {"truncate", "major", "critical", "repeat", "garbage", "trailing", "huge", "code"}


def test_fuzz_corruptions_fail_cleanly(valid: tuple[Container, bytes, dict]) -> None:
    c, data, _ = valid
    cases = corruptions(data)
    assert len(cases) >= 10_000
    outcomes: dict[str, list[int]] = {}
    worst_time, worst_ratio = 0.0, 0.0
    t_all = time.perf_counter()
    for k, (kind, damaged) in enumerate(cases):
        measure = k % 37 == 0
        if measure:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            result: Container | None = read_all(damaged)
        except BitstreamError:
            result = None
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"case {k} ({kind}) raised {type(exc).__name__}: {exc}") from exc
        finally:
            elapsed = time.perf_counter() - t0
            if measure:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                bound = 16 * len(damaged) + (1 << 20)
                assert peak < bound, f"case {k} ({kind}) peaked at {peak} bytes (bound {bound})"
                worst_ratio = max(worst_ratio, peak / max(len(damaged), 1))
        worst_time = max(worst_time, elapsed)
        assert elapsed < 1.0, f"case {k} ({kind}) took {elapsed:.2f} s"
        counts = outcomes.setdefault(kind, [0, 0])
        counts[result is None] += 1
        if result is not None:
            assert kind not in MUST_FAIL, f"case {k} ({kind}) was accepted"
            if kind in ("minor", "reorder"):
                assert result == c, f"case {k} ({kind}) read back different content"
    total = time.perf_counter() - t_all
    summary = ", ".join(f"{kind}: {ok} ok/{bad} err" for kind, (ok, bad) in outcomes.items())
    print(f"\n{len(cases)} cases in {total:.1f} s, slowest {worst_time * 1e3:.1f} ms; {summary}")
    assert outcomes["minor"][0] == 3  # a newer minor version still reads
    assert outcomes["flip"][1] >= 0.99 * sum(outcomes["flip"])  # CRC-32 catches nearly every flip
    assert math.isfinite(worst_ratio)


# ---------------------------------------------------------------------------------------------- formats 1 and 2


DATA = Path(__file__).parent / "data"
FORMAT_1 = DATA / "format-1.0.dnerv"  # written by dnervcodec 0.1.0 (stop 8)
FORMAT_2 = DATA / "format-2.0.dnerv"  # the format-1 tensors re-coded by the 0.2.0 writer (format 2.0)


@pytest.mark.parametrize("path,major", [(FORMAT_1, 1), (FORMAT_2, 2)])
def test_older_formats_still_read_and_decode(path: Path, major: int) -> None:
    """Files written before format 3 (each tensor with its own words) decode as they always did."""
    data = path.read_bytes()
    assert data[len(SIGNATURE) : PRE] == struct.pack(">HH", major, 0)
    c = read_all(data)
    assert all(seg.stream is None for seg in c.segments)
    if major == 1:
        assert all(t.coded.axis is None for t in c.segments[0].tensors.values())
    assert read_all(build(split_chunks(data), (major, 5))).segments == c.segments  # a newer minor reads too
    with pytest.raises(BitstreamError, match="CODE"):  # a shared stream is not part of these formats
        read_container(build(split_chunks(data)[:-1] + [(b"CODE", build_code(0, 0, b"")), (b"IEND", b"")],
                             (major, 0)))


def test_formats_1_2_and_3_decode_to_the_same_tensors() -> None:
    one, two = read_container(FORMAT_1.read_bytes()), read_container(FORMAT_2.read_bytes())
    three = read_container(write_container(two))
    assert three.segments[0].stream is not None
    decoded = [decode_segment(c.segments[0]) for c in (one, two, three)]
    for name in decoded[0]:
        assert np.array_equal(decoded[0][name], decoded[1][name]) and np.array_equal(decoded[1][name], decoded[2][name])


@pytest.mark.parametrize("path", [FORMAT_1, FORMAT_2])
def test_older_format_corruptions_fail_cleanly(path: Path) -> None:
    data = path.read_bytes()
    rng = np.random.default_rng(5)
    cases = corruptions(data, seed=99, targeted=False)
    picked = [cases[i] for i in rng.choice(len(cases), 2000, replace=False)]
    for kind, damaged in picked:
        t0 = time.perf_counter()
        try:
            read_all(damaged)
        except BitstreamError:
            pass
        assert time.perf_counter() - t0 < 1.0, kind
