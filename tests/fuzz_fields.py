"""Structure-aware damage to a valid .dnerv file: every field the reader interprets, re-framed with valid CRCs.

The byte-level fuzz (tests/test_bitstream.py) mostly meets the CRC; here each case edits one meaningful
thing (a JSON value of the header or a segment's meta, a field of a TNSR, CODE, HEAD, SEGM or tEXt chunk),
then rebuilds the chunk and its CRC, so the edit reaches the parser's checks. `cases()` is deterministic
for a seed; PLAN gives each family's base file and count. Families and what they edit:

  header      the HEAD JSON: any value (video frames/size/fps/source size, coding, encoder) or the text
  meta        a SEGM's JSON: frame range and every decoder field (widths, strides, kernels, diff stream)
  tensor      a TNSR header: name, dims, bits, axes, quantization scales/offsets, model, alphabet,
              count, table or (mean, scale) rows; some edits keep the fields consistent to reach deeper,
              some ask for big integer tables (16-bit Laplace/Gaussian rows, one per group) to meet the
              table budget of format 4
  code        the CODE chunk: word count, segment index, words
  counts      HEAD's segment count, SEGM's index and tensor count
  ancillary   tEXt names and payloads (deep, overflowing or broken JSON)
  segments    a two-segment file: the second segment's frame range and decoder

Base files: `tiny_file()` (7 tensors, written here by the codec's writer), the committed format-2.0 fixture
rewritten as format 3 (`base_file()`, 20 tensors, diff stream), and that clip split into two segments.
"""

from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path
from typing import Iterator

import numpy as np

from dnervcodec.bitstream import Container, decode_segment, encode_segment, read_container, write_container
from dnervcodec.models.dnerv import DecoderConfig, decoder_shapes
from tests.test_bitstream import build, build_tnsr, parse_tnsr, split_chunks

DATA = Path(__file__).parent / "data"
Case = tuple[str, str, bytes]  # (family, what was done, file)

# Raw JSON texts: values json.dumps cannot write (1e400, NaN), digit strings at and over CPython's limit,
# nesting at and far over the reader's depth limit, and every JSON type.
RAW_VALUES = [
    "0", "1", "-1", "2", "3", "7", "8", "9", "16", "63", "64", "65", "4095", "4096", "4097", "8192", "8193",
    "65536", "1000000", "2147483647", "2147483648", "4294967296", "9007199254740993", "18446744073709551616",
    "1e400", "-1e400", "1e308", "-1e308", "1e-400", "-0", "-0.0", "0.5", "1.5", "2.0", "16.0", "1e3",
    "true", "false", "null", '""', '"12"', '"abc"', '"\\u0000"', '"\\ud800"', '"\\udc00x"', '"\\ud83d\\ude00"',
    '"\u00fcn\u00efcode"', "[]", "{}", "[1]", "[0, 0]",
    "[-1]", "[1e400]", "[8, 8, 8, 8, 8, 8, 8, 8, 8]", '{"a": 1}', "NaN", "Infinity", "-Infinity",
    "9" * 4300, "9" * 4301, "-" + "9" * 4300, "[" * 31 + "]" * 31, "[" * 33 + "]" * 33, "[" * 2000,
    '{"a":' * 40 + "1" + "}" * 40,
]
U32 = [0, 1, 2, 3, 255, 256, 65535, 65536, 1 << 24, (1 << 24) + 1, 1 << 28, (1 << 28) + 1, 0x7FFFFFFF,
       0x80000000, 0xFFFFFFFF]
F16 = [float("nan"), float("inf"), -float("inf"), -1.0, -0.0, 0.0, 6e-8, 2**-6, 1e-3, 0.5, 1.0, 255.0, 256.0,
       65504.0]
_RAW = "\u0000raw\u0000"


def base_file() -> bytes:
    """The committed format-2.0 fixture (6 frames, 32x64, 20 tensors), rewritten by today's writer (format 3)."""
    return write_container(read_container((DATA / "format-2.0.dnerv").read_bytes()))


def tiny_file() -> bytes:
    """A minimal valid file (2 frames of 8x16, a one-stage decoder without diff stream, 7 tensors at 4 bits, seeded
    random weights) written by the codec's own writer: the header and ancillary edits run on it, as they
    test what `info` makes of the JSON, and a small file parses 3x faster than the 20-tensor fixture."""
    cfg = DecoderConfig(height=8, width=16, strides=(2,), kernels=(3,), embed_ch=2, lift_width=4, widths=(3,),
                        diff_ch=0)
    rng = np.random.default_rng(0)
    arrays = {f"w.{k}": (rng.normal(0, 0.3, s).astype(np.float32), "weight") for k, s in decoder_shapes(cfg).items()}
    arrays["e.content"] = (rng.normal(0, 1, (2, cfg.embed_ch, *cfg.embed_hw)).astype(np.float32), "embedding")
    header = {"encoder": "dnervcodec (fuzz base)", "video": {"frames": 2, "height": 8, "width": 16, "fps": 25.0,
                                                             "source_size": [8, 16], "start": 0},
              "coding": {"bits": 4, "prune": 0.0, "qat_epochs": 0, "budget": 1000}}
    segment = encode_segment({"first_frame": 0, "frames": 2, "decoder": cfg.to_dict()}, arrays, 4)
    timings = b'{"fit": 1.5, "quantize_entropy_code": 0.1}'
    denoise = b'{"method": "nlm", "sigma": 25, "seconds": 2.5}'
    return write_container(Container(header=header, segments=[segment],
                                     ancillary={"timings": timings, "denoise": denoise}))


def two_segment_file(data: bytes) -> bytes:
    """The same clip as two segments of 3 frames with the same decoder weights, re-quantized."""
    c = read_container(data)
    arrays = decode_segment(c.segments[0])
    kinds = {name: ("weight" if name.startswith("w.") else "embedding") for name in arrays}
    segments = []
    for first in (0, 3):
        part = {k: ((v[first : first + 3] if not k.startswith("w.") else v), kinds[k]) for k, v in arrays.items()}
        meta = dict(c.segments[0].meta, first_frame=first, frames=3)
        segments.append(encode_segment(meta, part, 8))
    return write_container(Container(header=c.header, segments=segments, ancillary=c.ancillary))


# ---------------------------------------------------------------------------------------------- JSON


def _paths(node: object, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (keys and indices) to a value inside a JSON document, the root excluded."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield prefix + (key,)
        yield from _paths(child, prefix + (key,))


def _get(doc: object, path: tuple) -> object:
    for key in path:
        doc = doc[key]
    return doc


def _dumps(doc: object, raw: str) -> bytes:
    """JSON text of doc with the string sentinel replaced by a raw JSON text (which may not be valid JSON)."""
    return json.dumps(doc, ensure_ascii=False).replace(json.dumps(_RAW), raw).encode("utf-8")


def _related(value: object) -> list[str]:
    """Values near the original: off by one, scaled, negated, as float, as string, wrapped, emptied."""
    if isinstance(value, bool) or value is None:
        return ["0", "1", '"x"']
    if isinstance(value, int):
        return [str(v) for v in (value + 1, value - 1, value * 2, value * 1000, -value, value << 32)] + [
            f"{value}.0", f"{value}.5", f'"{value}"', f"[{value}]"]
    if isinstance(value, float):
        return [repr(value * 10), repr(-value), repr(value * 1e300), str(int(value)), f'"{value}"']
    if isinstance(value, list):
        return [json.dumps(value[:-1]), json.dumps(value + value[-1:]), json.dumps(value[::-1]),
                json.dumps([v * 8 if isinstance(v, int) else v for v in value]), json.dumps([value])]
    if isinstance(value, dict):
        return ["[]", json.dumps(list(value.values()))]
    return ['""', '"' + "x" * 10000 + '"', json.dumps(value * 2)]


def json_edits(text: bytes, rng: random.Random, n: int) -> Iterator[tuple[str, bytes]]:
    """n edited versions of a JSON object's text: one value replaced, a key dropped or added, or the text."""
    doc = json.loads(text)
    paths = list(_paths(doc))
    for _ in range(n):
        roll = rng.random()
        if roll < 0.06:  # damage to the text itself
            kind = rng.randrange(6)
            if kind == 0:
                cut = rng.randrange(len(text))
                yield f"text cut at {cut}", text[:cut]
            elif kind == 1:
                key = next(iter(doc))
                yield f"duplicate key {key}", text[:-1] + b"," + json.dumps(key).encode() + b":1}"
            elif kind == 2:
                yield "trailing garbage", text + rng.choice([b" x", b"}", b"\x00", b"{}"])
            elif kind == 3:
                yield "invalid UTF-8", text[:-1] + b',"\xff\xfe":1}'
            elif kind == 4:
                yield "top level not an object", rng.choice([b"[]", b"1", b'"x"', b"null", b"[" * 200_000])
            else:
                yield "over 1 MiB", text[:-1] + b',"pad":"' + b"x" * (1 << 20) + b'"}'
            continue
        path = rng.choice(paths)
        parent, key = _get(doc, path[:-1]), path[-1]
        edited = json.loads(text)
        target = _get(edited, path[:-1])
        if roll < 0.14 and isinstance(parent, dict):
            del target[key]
            yield f"drop {'.'.join(map(str, path))}", _dumps(edited, "")
        elif roll < 0.18 and isinstance(parent, dict):
            target["zz_extra"] = 1
            yield f"add a key beside {'.'.join(map(str, path))}", _dumps(edited, "")
        else:
            raw = rng.choice(RAW_VALUES if roll < 0.7 else _related(_get(doc, path)))
            target[key] = _RAW
            yield f"{'.'.join(map(str, path))} = {raw[:40]}", _dumps(edited, raw)


def _with_json(chunks: list, index: int, prefix_len: int, new_json: bytes) -> bytes:
    ctype, body = chunks[index]
    mutated = list(chunks)
    mutated[index] = (ctype, body[:prefix_len] + new_json)
    return build(mutated)


# ---------------------------------------------------------------------------------------------- chunks

F16_FIELDS = ("scale", "offset", "rows")


def _f16s(raw: bytes, rng: random.Random) -> bytes:
    """One or all float16 values of an array replaced by a special value or random bits."""
    values = list(struct.unpack(f">{len(raw) // 2}e", raw))
    if not values:
        return raw
    pick = rng.choice(F16 + ["bits"])
    new = (lambda: struct.unpack(">e", rng.randbytes(2))[0]) if pick == "bits" else (lambda: pick)
    if rng.random() < 0.5:
        values[rng.randrange(len(values))] = new()
    else:
        values = [new() for _ in values]
    return struct.pack(f">{len(values)}e", *values)


def tensor_edit(f: dict, rng: random.Random) -> tuple[str, dict]:
    """One edit of a parsed TNSR's fields (tests.test_bitstream.parse_tnsr), sometimes kept consistent."""
    g = dict(f)
    field = rng.choice([k for k in f if k not in ("words", "nwords")] + ["consistent shape"] * 2 + ["tables"])
    if field in F16_FIELDS:
        g[field] = _f16s(f[field], rng)
        return f"{field} values", g
    if field in ("name", "table"):
        g[field] = rng.choice([b"", f[field][:-1], f[field] + b"x", b"\xff\xfe", b"a\0b", rng.randbytes(len(f[field])),
                               b"w.lift.weight", b"e.content", b"x" * 255])
        return f"{field} = {g[field][:20]!r}", g
    if field == "dims":
        dims = list(f["dims"])
        kind = rng.randrange(4)
        if kind == 0 and dims:
            dims[rng.randrange(len(dims))] = rng.choice([0, 1, 2, 1 << 24, (1 << 24) + 1, 0xFFFFFFFF])
        elif kind == 1:
            dims.append(rng.choice([1, 2, 3]))
        elif kind == 2 and dims:
            dims.pop(rng.randrange(len(dims)))
        else:
            dims = dims[::-1]
        g["dims"] = dims
        return f"dims = {dims}", g
    if field == "tables":  # a consistent 16-bit tensor of R groups with one (mean, scale) row each: R x 65,536 entries
        groups, scale = rng.choice([1, 2, 64, 65, 100, 1000]), rng.choice(F16[7:])
        rows = struct.pack(f">{2 * groups}e", *[v for _ in range(groups) for v in (rng.uniform(0, 65504), scale)])
        g = {k: v for k, v in f.items() if k not in ("lo", "n", "nbytes", "table")}
        g.update(dims=[groups, 1], count=groups, bits=16, alphabet=1 << 16, axis=0xFF, nq=1, scale=f["scale"][:2],
                 offset=f["offset"][:2], model=rng.choice([1, 2]), gaxis=0, flags=0, groups=groups, rows=rows)
        return f"{groups} rows of 65,536-entry tables", g
    if field == "consistent shape":  # dims, count, quantization and model rows agree, so only the config can object
        dims = list(f["dims"]) or [1]
        i = rng.randrange(len(dims))
        dims[i] = max(1, dims[i] + rng.choice([-1, 1, 2]))
        g.update(dims=dims, count=math.prod(dims))
        if f["axis"] != 0xFF:
            g.update(axis=0xFF, nq=1, scale=f["scale"][:2], offset=f["offset"][:2])
        if "gaxis" in f:
            g.update(gaxis=0xFF, groups=1, rows=f["rows"][:4], flags=0)
        return f"consistent dims {dims}", g
    if field in ("bits", "axis", "model", "gaxis", "flags"):
        g[field] = rng.choice([0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 254, 255, f[field] + 1, f[field] - 1]) & 0xFF
    else:  # u32 fields: segment, index, nq, alphabet, count, lo, n, nbytes, groups
        g[field] = rng.choice(U32 + [f[field] + 1, max(f[field] - 1, 0), f[field] * 2, f[field] * 1000]) & 0xFFFFFFFF
    return f"{field} = {g[field]}", g


def _tensor_cases(chunks: list, rng: random.Random, n: int) -> Iterator[Case]:
    tnsr = [i for i, (t, _) in enumerate(chunks) if t == b"TNSR"]
    for _ in range(n):
        i = rng.choice(tnsr)
        f = parse_tnsr(chunks[i][1])
        what, g = tensor_edit(f, rng)  # an edited table keeps its stated length: the two may disagree
        mutated = list(chunks)
        mutated[i] = (b"TNSR", build_tnsr(g))
        yield "tensor", f"{f['name'].decode()}: {what}", build(mutated)


def _code_cases(chunks: list, rng: random.Random, n: int) -> Iterator[Case]:
    i = next(k for k, (t, _) in enumerate(chunks) if t == b"CODE")
    segment, nwords = struct.unpack(">II", chunks[i][1][:8])
    words = chunks[i][1][8:]
    for _ in range(n):
        kind = rng.randrange(5)
        if kind == 0:
            v = rng.choice(U32 + [nwords + 1, nwords - 1, nwords // 2])
            body, what = struct.pack(">II", segment, v) + words, f"word count {v}"
        elif kind == 1:
            v = rng.choice([1, 2, 0xFFFFFFFF])
            body, what = struct.pack(">II", v, nwords) + words, f"segment index {v}"
        elif kind == 2:
            k = rng.randrange(nwords + 1)
            body, what = struct.pack(">II", segment, k) + words[: 4 * k], f"words cut to {k}"
        elif kind == 3:
            w = bytearray(words)
            for _ in range(rng.randint(1, 8)):
                w[rng.randrange(len(w))] = rng.randrange(256)
            body, what = struct.pack(">II", segment, nwords) + bytes(w), "words changed"
        else:
            extra = rng.choice([1, 100, 10_000])
            body = struct.pack(">II", segment, nwords + extra) + words + bytes(4 * extra)
            what = f"{extra} zero words added"
        mutated = list(chunks)
        mutated[i] = (b"CODE", body)
        yield "code", what, build(mutated)


def _count_cases(chunks: list, rng: random.Random, n: int) -> Iterator[Case]:
    for _ in range(n):
        which = rng.choice([b"HEAD", b"SEGM", b"SEGM"])
        i = next(k for k, (t, _) in enumerate(chunks) if t == which)
        body = bytearray(chunks[i][1])
        at = 0 if which == b"HEAD" else rng.choice([0, 4])
        v = rng.choice(U32 + [19, 20, 21])
        body[at : at + 4] = struct.pack(">I", v)
        mutated = list(chunks)
        mutated[i] = (which, bytes(body))
        yield "counts", f"{which.decode()} u32 at {at} = {v}", build(mutated)


def _ancillary_cases(chunks: list, rng: random.Random, n: int) -> Iterator[Case]:
    text = [k for k, (t, _) in enumerate(chunks) if t == b"tEXt"]
    for k in range(n):
        i = rng.choice(text)
        name, payload = chunks[i][1].split(b"\0", 1)
        what, new_payload = next(json_edits(payload, rng, 1))
        if k % 5 == 4:  # the name instead of the payload
            new_name = rng.choice([b"", b"x" * 79, b"x" * 80, b"\xff", b"a\0b", b"timings", b"denoise", name])
            body = new_name + (b"\0" if rng.random() < 0.9 else b"") + payload
            what = f"name {new_name[:10]!r}"
        else:
            body = name + b"\0" + new_payload
            what = f"{name.decode()}: {what}"
        mutated = list(chunks)
        mutated[i] = (b"tEXt", body)
        yield "ancillary", what, build(mutated)


# ---------------------------------------------------------------------------------------------- all


# (family, base file, cases): the tiny file carries most cases (it parses 3x faster); the 20-tensor fixture
# brings the diff stream, the CCU and other entropy models (uniform, laplace); the two-segment file the tiling.
PLAN = [
    ("header", "tiny", 1200), ("ancillary", "tiny", 250),
    ("meta", "tiny", 2800), ("meta", "fixture", 1200),
    ("tensor", "tiny", 2500), ("tensor", "fixture", 1200),
    ("code", "tiny", 250), ("code", "fixture", 150),
    ("counts", "tiny", 200), ("counts", "fixture", 150),
    ("segments", "two segments", 300),
]


def cases(seed: int = 2024, scale: float = 1.0, files: dict[str, bytes] | None = None,
          plan: list[tuple[str, str, int]] | None = None) -> Iterator[Case]:
    """The structure-aware cases of `plan` (default PLAN), in a fixed order for a seed; `scale` multiplies every
    count. `files` maps the plan's base names to files (default: the tiny file, the fixture and its split)."""
    rng = random.Random(seed)
    if files is None:
        fixture = base_file()
        files = {"tiny": tiny_file(), "fixture": fixture, "two segments": two_segment_file(fixture)}
    for family, base, n in PLAN if plan is None else plan:
        n = max(1, round(n * scale))
        chunks = split_chunks(files[base])
        if family in ("header", "meta", "segments"):
            ctype, skip = (b"HEAD", 4) if family == "header" else (b"SEGM", 8)
            i = [k for k, (t, _) in enumerate(chunks) if t == ctype][-1]  # the last segment of a two-segment file
            for what, text in json_edits(chunks[i][1][skip:], rng, n):
                yield family, f"{base}: {what}", _with_json(chunks, i, skip, text)
        else:
            make = {"tensor": _tensor_cases, "code": _code_cases, "counts": _count_cases,
                    "ancillary": _ancillary_cases}[family]
            for fam, what, data in make(chunks, rng, n):
                yield fam, f"{base}: {what}", data
