"""The .dnerv container: a PNG-like sequence of CRC-checked chunks. Spec: docs/bitstream.md.

A file is a 9-byte signature, a format version, then chunks ``length | type | data | CRC-32(type + data)``:
``HEAD`` (first, once), per segment a ``SEGM`` followed by its ``TNSR`` chunks and its ``CODE``, ancillary
``tEXt`` chunks anywhere in between, and ``IEND`` (last, once). A chunk type whose first letter is upper
case is critical (an unknown one stops the reader); lower case is ancillary (an unknown one is skipped).

A bitstream is untrusted input: there is no pickle, torch or eval here, every length, count and shape is
checked against fixed limits and against the bytes left before anything is allocated, and every problem
raises :class:`BitstreamError`. :func:`read_container` parses and validates but does not entropy-decode;
:func:`decode_segment` decodes a segment's tensors, after bounding their symbol counts by the coded size.
From format 3 on, a segment's tensors share one range-coder stream, a ``CODE`` chunk after its ``TNSR``
chunks; files of format 1 and 2 (words inside each ``TNSR``) are still read. From format 4 on, every entropy
model's frequencies are integer tables (portable decoding); files of formats 1 to 3 are read with the float
models they were written with.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Literal

import numpy as np

from .compress.entropy import (
    MODELS,
    CodedSymbols,
    check_coded,
    check_stream,
    decode_stream,
    decode_symbols,
    encode_stream,
    encode_symbols,
    pack_counts,
    table_shares,
    unpack_counts,
)
from .compress.quant import MAX_BITS, MIN_BITS, QuantParams, dequantize, quantize_embedding, quantize_weight
from .errors import BitstreamError, ConfigError

SIGNATURE = b"\x8bDNRV\r\n\x1a\n"
FORMAT_VERSION: tuple[int, int] = (4, 0)  # 4.0: integer (portable) tables for every entropy model
OLDEST_MAJOR = 1  # format 1.x files (float32 tables and parameters, one group) are still read
SHARED_STREAM_MAJOR = 3  # from format 3 on, a segment's tensors share one range-coder stream (CODE chunk)
PORTABLE_MAJOR = 4  # from format 4 on, the entropy models are integer tables, the same on every machine

MAX_CHUNK_LENGTH = (1 << 31) - 1
MAX_JSON_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_DIMS = 8
MAX_DIM = 1 << 24
MAX_ELEMENTS = 1 << 28
MAX_SEGMENTS = 1 << 16
MAX_TENSORS_PER_SEGMENT = 1 << 16
MAX_NAME_BYTES = 255
MAX_ANCILLARY_NAME_BYTES = 79
NO_AXIS = 0xFF
_FLOAT32_MAX = float(np.finfo(np.float32).max)

_PREAMBLE = len(SIGNATURE) + 4
_FRAMING = 12  # length + type + CRC around each chunk's data


@dataclass(frozen=True)
class CodedTensor:
    """One named tensor as stored: how to dequantize it and its entropy-coded symbols."""

    name: str
    quant: QuantParams
    coded: CodedSymbols


@dataclass(eq=False)
class Segment:
    """A group of frames decodable on its own: free-form JSON meta and its tensors, in file order.

    ``stream``: the range-coder words of all its tensors, in order (format 3 on; the tensors then hold no
    words of their own), or None when each tensor carries its own words (read from format 1/2, or fresh from
    :func:`encode_tensor`; the writer turns those into a shared stream with portable models).
    """

    meta: dict
    tensors: dict[str, CodedTensor] = field(default_factory=dict)
    stream: np.ndarray | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Segment):
            return NotImplemented
        same_stream = (self.stream is None and other.stream is None) or (
            self.stream is not None and other.stream is not None and np.array_equal(self.stream, other.stream))
        return self.meta == other.meta and self.tensors == other.tensors and same_stream

    __hash__ = None  # type: ignore[assignment]


@dataclass
class Container:
    """A whole file: JSON header (video meta, decoder config, coding params), segments, ancillary blobs."""

    header: dict
    segments: list[Segment] = field(default_factory=list)
    ancillary: dict[str, bytes] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- tensors


def quantize_tensor(array: np.ndarray, bits: int, kind: Literal["weight", "embedding"]):
    """(symbols in the tensor's shape, QuantParams, group axes the entropy models may try) of one tensor.

    Weights are quantized per output channel, embeddings per tensor or per channel. Parametric entropy
    models may take one (mean, scale) per output channel of a weight (axis 0) or per channel of an embedding
    [T, C, h, w] (axis 1), where channels differ; the cheapest choice wins.
    """
    if kind == "weight":
        symbols, quant = quantize_weight(array, bits)
    elif kind == "embedding":
        symbols, quant = quantize_embedding(array, bits)
    else:
        raise ConfigError(f"tensor kind must be 'weight' or 'embedding', got {kind!r}")
    return symbols.reshape(quant.shape), quant, group_axes(kind, len(quant.shape))


def encode_tensor(
    name: str, array: np.ndarray, bits: int, kind: Literal["weight", "embedding"]
) -> CodedTensor:
    """Quantize and entropy-code one tensor with words of its own (a one-tensor stream)."""
    symbols, quant, axes = quantize_tensor(array, bits, kind)
    return CodedTensor(name=name, quant=quant, coded=encode_symbols(symbols, quant.levels, axes=axes))


def encode_segment(meta: dict, arrays: dict[str, tuple[np.ndarray, Literal["weight", "embedding"]]],
                   bits: int) -> Segment:
    """Quantize every tensor (min/max, `bits` bits), choose its entropy model, and code them all in one
    shared stream (format 3)."""
    return encode_quantized_segment(meta, {name: quantize_tensor(array, bits, kind) for name, (array, kind) in arrays.items()})


def group_axes(kind: Literal["weight", "embedding"], ndim: int) -> tuple[int | None, ...]:
    """The axes whose indices may each get their own entropy-model parameters: a weight's output channels,
    an embedding's channels [T, C, h, w]."""
    if kind == "weight":
        return (None, 0) if ndim >= 2 else (None,)
    return (None, 1) if ndim == 4 else (None,)


def encode_quantized_segment(meta: dict, quantized: dict[str, tuple[np.ndarray, QuantParams, tuple]]) -> Segment:
    """Already quantized tensors (symbols in the tensor's shape, QuantParams, group axes) -> a segment:
    each tensor's entropy model chosen within its share of the segment's table budget, all coded in one
    shared stream (format 3 on)."""
    tensors, symbols = {}, {}
    shares = table_shares([math.prod(quant.shape) for _, quant, _ in quantized.values()])
    for (name, (sym, quant, axes)), share in zip(quantized.items(), shares):
        symbols[name] = np.asarray(sym).reshape(quant.shape)
        coded = encode_symbols(symbols[name], quant.levels, axes=axes, own_words=False, max_table=share)
        tensors[name] = CodedTensor(name=name, quant=quant, coded=coded)
    words = encode_stream([(t.coded, symbols[name]) for name, t in tensors.items()])
    return Segment(meta=meta, tensors=tensors, stream=words)


def decode_tensor(t: CodedTensor) -> np.ndarray:
    """Entropy-decode and dequantize a tensor with its own words (format 1/2) to float32 of the stored shape."""
    _check_tensor(t)
    return dequantize(decode_symbols(t.coded, t.quant.shape), t.quant)


def segment_symbols(seg: Segment) -> dict[str, np.ndarray]:
    """Every tensor's integer symbols, in the tensor's shape; BitstreamError if anything is off."""
    for t in seg.tensors.values():
        _check_tensor(t)
    if seg.stream is None:
        flat = [decode_symbols(t.coded, t.quant.shape) for t in seg.tensors.values()]
    else:
        flat = decode_stream(seg.stream, [(t.coded, t.quant.shape) for t in seg.tensors.values()])
    return {name: f.reshape(t.quant.shape) for (name, t), f in zip(seg.tensors.items(), flat)}


def decode_segment(seg: Segment) -> dict[str, np.ndarray]:
    """Entropy-decode and dequantize every tensor of a segment to float32; BitstreamError if anything is off."""
    return {name: dequantize(s, seg.tensors[name].quant) for name, s in segment_symbols(seg).items()}


def shared_stream(seg: Segment) -> Segment:
    """The segment as the writer stores it: its tensors coded in one shared stream with portable models
    (format 4), same models, parameters and symbols.

    For segments whose tensors carry their own words (read from format 1/2, or built with
    :func:`encode_tensor`) or use the float models of formats 1 to 3 (read from such a file);
    :func:`encode_segment` codes a new segment's stream directly."""
    if seg.stream is not None and any(t.coded.words is not None for t in seg.tensors.values()):
        raise ValueError("a segment with a shared stream holds tensors without words of their own")
    if seg.stream is None and any(t.coded.words is None for t in seg.tensors.values()):
        raise ValueError("a tensor without words of its own needs its segment's stream")
    if seg.stream is not None and all(t.coded.portable for t in seg.tensors.values()):
        return seg
    try:
        symbols = segment_symbols(seg)
    except BitstreamError as exc:
        raise ValueError(f"a tensor cannot be written: {exc}") from None
    tensors = {name: replace(t, coded=replace(t.coded, words=None, portable=True))
               for name, t in seg.tensors.items()}
    words = encode_stream([(t.coded, symbols[name]) for name, t in tensors.items()])
    return Segment(meta=seg.meta, tensors=tensors, stream=words)


def _check_quant(q: QuantParams) -> None:
    shape = q.shape
    if not isinstance(shape, tuple) or len(shape) > MAX_DIMS:
        raise BitstreamError(f"corrupt tensor: more than {MAX_DIMS} dimensions")
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_DIM:
            raise BitstreamError(f"corrupt tensor: dimension {d!r} outside [1, {MAX_DIM}]")
    if math.prod(shape) > MAX_ELEMENTS:
        raise BitstreamError(f"corrupt tensor: shape {shape} has more than {MAX_ELEMENTS} elements")
    if isinstance(q.bits, bool) or not isinstance(q.bits, int) or not MIN_BITS <= q.bits <= MAX_BITS:
        raise BitstreamError(f"corrupt tensor: {q.bits!r} bits outside [{MIN_BITS}, {MAX_BITS}]")
    if q.axis is None:
        channels = 1
    elif isinstance(q.axis, int) and not isinstance(q.axis, bool) and 0 <= q.axis < len(shape):
        channels = shape[q.axis]
    else:
        raise BitstreamError(f"corrupt tensor: quantization axis {q.axis!r} for a {len(shape)}-d tensor")
    for what, arr in (("scale", q.scale), ("offset", q.offset)):
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.shape != (channels,):
            raise BitstreamError(f"corrupt tensor: {what} must be {channels} float32 values")
        if not np.isfinite(arr).all():
            raise BitstreamError(f"corrupt tensor: {what} is not finite")
    if (q.scale < 0).any():
        raise BitstreamError("corrupt tensor: negative quantization scale")
    top = np.abs(q.offset.astype(np.float64)) + q.scale.astype(np.float64) * ((1 << q.bits) - 1)
    if (top > _FLOAT32_MAX).any():
        raise BitstreamError("corrupt tensor: quantization range overflows float32")


def _check_tensor(t: CodedTensor) -> None:
    """Cross-check quantization and coding fields of one tensor (no decoding)."""
    if not isinstance(t.quant, QuantParams) or not isinstance(t.coded, CodedSymbols):
        raise BitstreamError("corrupt tensor: malformed fields")
    _check_quant(t.quant)
    check_coded(t.coded, t.quant.shape)
    if t.coded.alphabet != 1 << t.quant.bits:
        raise BitstreamError(f"corrupt tensor: alphabet {t.coded.alphabet} does not match {t.quant.bits} bits")
    if t.coded.count != math.prod(t.quant.shape):
        raise BitstreamError(f"corrupt tensor: {t.coded.count} symbols for shape {t.quant.shape}")


# ---------------------------------------------------------------------------------------------- writing


def _chunk(ctype: bytes, data: bytes) -> bytes:
    if len(data) > MAX_CHUNK_LENGTH:
        raise ValueError(f"chunk {ctype!r} of {len(data)} bytes exceeds the format limit")
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(ctype)))


def _json_bytes(obj: dict, what: str) -> bytes:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a dict, got {type(obj).__name__}")
    try:
        data = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON-serializable: {exc}") from None
    try:
        _parse_json(data, what)  # the reader must accept what we write (size and depth limits)
    except BitstreamError as exc:
        raise ValueError(f"{what} cannot be written: {exc}") from None
    return data


def _name_bytes(name: str, limit: int, what: str) -> bytes:
    data = name.encode("utf-8") if isinstance(name, str) else b""
    if not 1 <= len(data) <= limit or "\x00" in name:
        raise ValueError(f"{what} {name!r} must be 1 to {limit} UTF-8 bytes without NUL")
    return data


def _tensor_data(segment: int, index: int, t: CodedTensor) -> bytes:
    try:
        _check_tensor(t)
    except BitstreamError as exc:
        raise ValueError(f"tensor {t.name!r} cannot be written: {exc}") from None
    q, c = t.quant, t.coded
    if not c.portable:
        raise ValueError(f"tensor {t.name!r} cannot be written: a legacy (float) entropy model")
    name = _name_bytes(t.name, MAX_NAME_BYTES, "tensor name")
    parts = [
        struct.pack(">IIH", segment, index, len(name)),
        name,
        struct.pack(">B", len(q.shape)),
        struct.pack(f">{len(q.shape)}I", *q.shape),
        struct.pack(">BBI", q.bits, NO_AXIS if q.axis is None else q.axis, q.scale.size),
        q.scale.astype(">f2").tobytes(),
        q.offset.astype(">f2").tobytes(),
        struct.pack(">BII", MODELS.index(c.model), c.alphabet, c.count),
        _model_data(c),
    ]
    return b"".join(parts)


PINNED = 0x01  # flags bit of a parametric model: each group's first 0 and first top symbol are positions


def _model_data(c: CodedSymbols) -> bytes:
    """Format 2 entropy-model parameters: an integer table, float16 (mean, scale) rows, or nothing."""
    if c.model == "uniform":
        return b""
    if c.model == "categorical":
        counts = c.params[1:]
        if not np.array_equal(counts, np.floor(counts)) or counts.max() >= 2**53:
            raise ValueError("a categorical table must hold integer counts to be written")
        table = pack_counts(counts.astype(np.int64))
        return struct.pack(">III", int(c.params[0]), counts.size, len(table)) + table
    rows = c.params.astype(">f2")
    if not np.array_equal(rows.astype(np.float64), c.params):
        raise ValueError("parametric entropy parameters must be float16 values to be written")
    axis = NO_AXIS if c.axis is None else c.axis
    return struct.pack(">BBI", axis, PINNED if c.pinned else 0, rows.shape[0]) + rows.tobytes()


def write_container(c: Container) -> bytes:
    """Serialize a container; ValueError if it breaks a format limit (the reader would refuse it)."""
    if len(c.segments) > MAX_SEGMENTS:
        raise ValueError(f"at most {MAX_SEGMENTS} segments")
    out = [SIGNATURE, struct.pack(">HH", *FORMAT_VERSION)]
    out.append(_chunk(b"HEAD", struct.pack(">I", len(c.segments)) + _json_bytes(c.header, "header")))
    for key, blob in c.ancillary.items():
        if not isinstance(blob, (bytes, bytearray)):
            raise ValueError(f"ancillary {key!r} must be bytes")
        out.append(_chunk(b"tEXt", _name_bytes(key, MAX_ANCILLARY_NAME_BYTES, "ancillary name") + b"\0" + blob))
    for i, seg in enumerate(c.segments):
        if len(seg.tensors) > MAX_TENSORS_PER_SEGMENT:
            raise ValueError(f"segment {i} has more than {MAX_TENSORS_PER_SEGMENT} tensors")
        meta = _json_bytes(seg.meta, f"segment {i} meta")
        out.append(_chunk(b"SEGM", struct.pack(">II", i, len(seg.tensors)) + meta))
        for name, t in seg.tensors.items():
            if name != t.name:
                raise ValueError(f"segment {i}: tensor stored under key {name!r} is named {t.name!r}")
        seg = shared_stream(seg)
        try:
            check_stream([(t.coded, t.quant.shape) for t in seg.tensors.values()], int(seg.stream.size))
        except BitstreamError as exc:
            raise ValueError(f"segment {i} cannot be written: {exc}") from None
        for j, t in enumerate(seg.tensors.values()):
            out.append(_chunk(b"TNSR", _tensor_data(i, j, t)))
        out.append(_chunk(b"CODE", struct.pack(">II", i, seg.stream.size) + seg.stream.astype(">u4").tobytes()))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


# ---------------------------------------------------------------------------------------------- reading


def _reject_constant(token: str) -> None:
    raise ValueError(f"non-standard JSON constant {token}")


def _unique_pairs(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _finite_float(token: str) -> float:
    """A JSON number with a fraction or exponent; 1e400 would become infinity, which JSON cannot hold."""
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"number {token[:20]} overflows a float")
    return value


def parse_json(data: bytes | memoryview, what: str) -> dict:
    """The header's bounded JSON parser (rules below), for any JSON read from a file, e.g. ancillary payloads."""
    return _parse_json(data, what)


def _parse_json(data: bytes | memoryview, what: str) -> dict:
    """Strict, bounded JSON: UTF-8, an object at the top, no NaN/Infinity (nor numbers that overflow to it),
    no duplicate keys, no unpaired surrogates in strings, depth <= 32."""
    if len(data) > MAX_JSON_BYTES:
        raise BitstreamError(f"{what} JSON is larger than {MAX_JSON_BYTES} bytes")
    try:
        text = bytes(data).decode("utf-8")
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                         object_pairs_hook=_unique_pairs)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BitstreamError(f"corrupt {what}: invalid JSON ({str(exc)[:80]})") from None
    if not isinstance(obj, dict):
        raise BitstreamError(f"corrupt {what}: JSON must be an object")
    stack = [(obj, 1)]
    while stack:  # iterative depth check
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BitstreamError(f"corrupt {what}: JSON nested deeper than {MAX_JSON_DEPTH}")
        children = [*node, *node.values()] if isinstance(node, dict) else node
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
        if not all(_is_unicode(v) for v in children if isinstance(v, str)):
            raise BitstreamError(f"corrupt {what}: a JSON string holds an unpaired surrogate escape (\\ud800)")
    return obj


def _is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate (from an escape like \\ud800), which no UTF-8 text can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Cursor:
    """Bounds-checked big-endian reader over one chunk's data."""

    def __init__(self, data: memoryview, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> memoryview:
        if n < 0 or n > len(self.data) - self.pos:
            raise BitstreamError(f"corrupt {self.what}: field runs past the end of its chunk")
        view = self.data[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def array(self, n: int, dtype: str) -> np.ndarray:
        """n big-endian items -> native array; the byte count is checked against the chunk first."""
        raw = self.take(n * np.dtype(dtype).itemsize)
        return np.frombuffer(raw, dtype=dtype).astype(dtype.replace(">", "="))

    def rest(self) -> memoryview:
        return self.take(len(self.data) - self.pos)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise BitstreamError(f"corrupt {self.what}: {len(self.data) - self.pos} unexpected trailing bytes")


def _check_version(data: bytes | memoryview) -> tuple[int, int]:
    head = bytes(data[: len(SIGNATURE)])
    if head != SIGNATURE:
        if len(head) == len(SIGNATURE) and head[1:5] == SIGNATURE[1:5]:
            raise BitstreamError(
                "damaged .dnerv file: its signature was altered, e.g. by a text-mode (line-ending) transfer; "
                "copy it again in binary mode"
            )
        raise BitstreamError("not a .dnerv file (bad signature), or the file is damaged or truncated")
    if len(data) < _PREAMBLE:
        raise BitstreamError("truncated .dnerv file: no format version")
    major, minor = struct.unpack(">HH", data[len(SIGNATURE) : _PREAMBLE])
    if major > FORMAT_VERSION[0]:
        raise BitstreamError(
            f"this file was written by a newer dnervcodec (format {major}.{minor}, we read up to "
            f"{FORMAT_VERSION[0]}.x); upgrade dnervcodec"
        )
    if major < OLDEST_MAJOR:
        raise BitstreamError(f"unsupported .dnerv format version {major}.{minor}")
    return major, minor


def file_version(data: bytes | memoryview) -> tuple[int, int]:
    """(major, minor) format version of a file this reader accepts; BitstreamError otherwise."""
    return _check_version(data)


def _chunks(data: bytes | memoryview) -> Iterator[tuple[bytes, memoryview, int]]:
    """Yield (type, data, total bytes incl. framing) for each CRC-checked chunk after the preamble."""
    view = memoryview(data)
    _check_version(view)
    pos = _PREAMBLE
    while pos < len(view):
        if len(view) - pos < _FRAMING:
            raise BitstreamError(f"truncated .dnerv file: chunk header at byte {pos} is cut off")
        (length,) = struct.unpack(">I", view[pos : pos + 4])
        ctype = bytes(view[pos + 4 : pos + 8])
        if not all(65 <= b <= 90 or 97 <= b <= 122 for b in ctype):
            raise BitstreamError(f"corrupt .dnerv file: invalid chunk type {ctype!r} at byte {pos}")
        if length > MAX_CHUNK_LENGTH or length > len(view) - pos - _FRAMING:
            raise BitstreamError(
                f"truncated or corrupt .dnerv file: chunk {ctype.decode()} at byte {pos} claims {length} bytes"
            )
        body = view[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", view[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(body, zlib.crc32(ctype)) != crc:
            raise BitstreamError(f"corrupt .dnerv file: CRC mismatch in chunk {ctype.decode()} at byte {pos}")
        yield ctype, body, length + _FRAMING
        pos += length + _FRAMING


def _read_tensor(data: memoryview, major: int) -> tuple[int, int, CodedTensor]:
    cur = _Cursor(data, "TNSR chunk")
    segment, index, name_len = cur.unpack(">IIH")
    if not 1 <= name_len <= MAX_NAME_BYTES:
        raise BitstreamError(f"corrupt TNSR chunk: name length {name_len}")
    try:
        name = bytes(cur.take(name_len)).decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("corrupt TNSR chunk: tensor name is not UTF-8") from None
    if "\x00" in name:
        raise BitstreamError("corrupt TNSR chunk: NUL in tensor name")
    what = f"tensor {name!r}"
    cur.what = what
    (ndim,) = cur.unpack(">B")
    if ndim > MAX_DIMS:
        raise BitstreamError(f"corrupt {what}: {ndim} dimensions (at most {MAX_DIMS})")
    shape = tuple(int(d) for d in cur.unpack(f">{ndim}I"))
    if any(not 1 <= d <= MAX_DIM for d in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise BitstreamError(f"corrupt {what}: shape {shape} out of limits")
    bits, axis, nq = cur.unpack(">BBI")
    if not MIN_BITS <= bits <= MAX_BITS:
        raise BitstreamError(f"corrupt {what}: {bits} bits")
    if axis != NO_AXIS and axis >= ndim:
        raise BitstreamError(f"corrupt {what}: quantization axis {axis} for {ndim} dimensions")
    expected = 1 if axis == NO_AXIS else shape[axis]
    if nq != expected:
        raise BitstreamError(f"corrupt {what}: {nq} scales, expected {expected}")
    scale = cur.array(nq, ">f2").astype(np.float32)
    offset = cur.array(nq, ">f2").astype(np.float32)
    model, alphabet, count = cur.unpack(">BII")
    if model >= len(MODELS):
        raise BitstreamError(f"corrupt {what}: unknown entropy model {model}")
    if major == 1:
        if MODELS[model] == "uniform":
            raise BitstreamError(f"corrupt {what}: unknown entropy model {model} in a format 1 file")
        group_axis, pinned, params = _read_model_v1(cur, MODELS[model], alphabet, what)
    else:
        group_axis, pinned, params = _read_model_v2(cur, MODELS[model], alphabet, count, shape, what)
    words = None
    if major < SHARED_STREAM_MAJOR:
        (nwords,) = cur.unpack(">I")
        words = cur.array(nwords, ">u4")
    cur.done()
    quant = QuantParams(shape=shape, bits=bits, axis=None if axis == NO_AXIS else axis, scale=scale, offset=offset)
    coded = CodedSymbols(model=MODELS[model], alphabet=alphabet, count=count, params=params, words=words,
                         axis=group_axis, pinned=pinned, portable=major >= PORTABLE_MAJOR)
    tensor = CodedTensor(name=name, quant=quant, coded=coded)
    _check_tensor(tensor)
    return segment, index, tensor


def _read_model_v1(cur: _Cursor, model: str, alphabet: int, what: str) -> tuple[None, bool, np.ndarray]:
    """Format 1: n_params float32 values, one group (a table [lo, w...] or one (mean, scale) pair)."""
    (nparams,) = cur.unpack(">I")
    if nparams > alphabet + 1:
        raise BitstreamError(f"corrupt {what}: {nparams} model parameters for alphabet {alphabet}")
    params = cur.array(nparams, ">f4").astype(np.float64)
    if model != "categorical":
        if params.size != 2:
            raise BitstreamError(f"corrupt {what}: {model} model needs 2 parameters, got {params.size}")
        params = params.reshape(1, 2)
    return None, False, params


def _read_model_v2(cur: _Cursor, model: str, alphabet: int, count: int, shape: tuple[int, ...],
                   what: str) -> tuple[int | None, bool, np.ndarray]:
    """Format 2: a Rice-coded integer table, float16 (mean, scale) rows over groups, or nothing (uniform)."""
    if model == "uniform":
        return None, False, np.zeros(0, np.float64)
    if model == "categorical":
        lo, n, nbytes = cur.unpack(">III")
        if not 1 <= n <= alphabet or lo > alphabet - n:
            raise BitstreamError(f"corrupt {what}: table of {n} entries from {lo} for alphabet {alphabet}")
        counts = unpack_counts(bytes(cur.take(nbytes)), n, count)
        return None, False, np.concatenate([[lo], counts]).astype(np.float64)
    group_axis, flags, rows = cur.unpack(">BBI")
    if flags & ~PINNED:
        raise BitstreamError(f"corrupt {what}: unknown model flags {flags:#x}")
    if group_axis == NO_AXIS:
        expected, group_axis = 1, None
    elif group_axis < len(shape):
        expected = shape[group_axis]
    else:
        raise BitstreamError(f"corrupt {what}: group axis {group_axis} for {len(shape)} dimensions")
    if rows not in (1, expected):
        raise BitstreamError(f"corrupt {what}: {rows} parameter rows, expected 1 or {expected}")
    params = cur.array(2 * rows, ">f2").astype(np.float64).reshape(rows, 2)
    return group_axis, bool(flags & PINNED), params


def _read_ancillary(data: memoryview) -> tuple[str, bytes]:
    raw = bytes(data)
    nul = raw.find(b"\0", 0, MAX_ANCILLARY_NAME_BYTES + 1)
    if nul < 1:
        raise BitstreamError("corrupt tEXt chunk: missing or over-long name")
    try:
        name = raw[:nul].decode("utf-8")
    except UnicodeDecodeError:
        raise BitstreamError("corrupt tEXt chunk: name is not UTF-8") from None
    return name, raw[nul + 1 :]


def _read_stream(data: memoryview, index: int, seg: Segment) -> np.ndarray:
    """A CODE chunk: u32 segment index, u32 word count, the words; bounded against the segment's tensors."""
    cur = _Cursor(data, "CODE chunk")
    segment, nwords = cur.unpack(">II")
    if segment != index:
        raise BitstreamError(f"corrupt CODE chunk: it names segment {segment}, not {index}")
    words = cur.array(nwords, ">u4")
    cur.done()
    check_stream([(t.coded, t.quant.shape) for t in seg.tensors.values()], nwords)
    return words


HeaderCheck = Callable[[dict, int], None]
SegmentCheck = Callable[[int, dict], None]


def read_container(data: bytes, on_header: HeaderCheck | None = None,
                   on_segment: SegmentCheck | None = None) -> Container:
    """Parse and validate a whole file (tensors are checked but not decoded); BitstreamError on any fault.

    `on_header(header, n_segments)` and `on_segment(index, meta)` run as soon as the HEAD or a SEGM chunk is
    read, before the chunks that follow: a caller that knows what the JSON means (codec.parse) refuses a
    hostile header there, before any tensor of the file is parsed.
    """
    header: dict | None = None
    n_segments = 0
    segments: list[Segment] = []
    expected_tensors = 0
    ancillary: dict[str, bytes] = {}
    ended = False
    major, _ = _check_version(data)
    shared = major >= SHARED_STREAM_MAJOR
    for ctype, body, _ in _chunks(data):
        if ended:
            raise BitstreamError("corrupt .dnerv file: chunks after IEND")
        if header is None and ctype != b"HEAD":
            raise BitstreamError(f"corrupt .dnerv file: first chunk is {ctype.decode()}, not HEAD")
        if ctype == b"HEAD":
            if header is not None:
                raise BitstreamError("corrupt .dnerv file: repeated HEAD chunk")
            cur = _Cursor(body, "HEAD chunk")
            (n_segments,) = cur.unpack(">I")
            if n_segments > MAX_SEGMENTS:
                raise BitstreamError(f"corrupt HEAD chunk: {n_segments} segments (at most {MAX_SEGMENTS})")
            header = _parse_json(cur.rest(), "header")
            if on_header is not None:
                on_header(header, n_segments)
        elif ctype == b"SEGM":
            if segments and len(segments[-1].tensors) != expected_tensors:
                raise BitstreamError(f"corrupt .dnerv file: segment {len(segments) - 1} is missing tensors")
            if segments and shared and segments[-1].stream is None:
                raise BitstreamError(f"corrupt .dnerv file: segment {len(segments) - 1} has no CODE chunk")
            cur = _Cursor(body, "SEGM chunk")
            index, expected_tensors = cur.unpack(">II")
            if index != len(segments) or index >= n_segments:
                raise BitstreamError(f"corrupt .dnerv file: segment {index} out of order or not declared")
            if expected_tensors > MAX_TENSORS_PER_SEGMENT:
                raise BitstreamError(f"corrupt SEGM chunk: {expected_tensors} tensors")
            segments.append(Segment(meta=_parse_json(cur.rest(), f"segment {index} meta"), tensors={}))
            if on_segment is not None:
                on_segment(index, segments[-1].meta)
        elif ctype == b"TNSR":
            if not segments:
                raise BitstreamError("corrupt .dnerv file: tensor before any SEGM chunk")
            segment, index, tensor = _read_tensor(body, major)
            tensors = segments[-1].tensors
            if segment != len(segments) - 1 or index != len(tensors) or index >= expected_tensors:
                raise BitstreamError(f"corrupt .dnerv file: tensor {tensor.name!r} out of order or not declared")
            if tensor.name in tensors:
                raise BitstreamError(f"corrupt .dnerv file: tensor {tensor.name!r} repeated in a segment")
            if segments[-1].stream is not None:
                raise BitstreamError(f"corrupt .dnerv file: tensor {tensor.name!r} after its segment's CODE chunk")
            tensors[tensor.name] = tensor
        elif ctype == b"CODE":
            if not shared:
                raise BitstreamError(f"corrupt .dnerv file: a CODE chunk in a format {major} file")
            if not segments or len(segments[-1].tensors) != expected_tensors or segments[-1].stream is not None:
                raise BitstreamError("corrupt .dnerv file: CODE chunk before its segment's tensors, or repeated")
            segments[-1].stream = _read_stream(body, len(segments) - 1, segments[-1])
        elif ctype == b"tEXt":
            name, blob = _read_ancillary(body)
            if name in ancillary:
                raise BitstreamError(f"corrupt .dnerv file: repeated ancillary chunk {name!r}")
            ancillary[name] = blob
        elif ctype == b"IEND":
            if len(body):
                raise BitstreamError("corrupt IEND chunk: it must be empty")
            if len(segments) != n_segments or (segments and len(segments[-1].tensors) != expected_tensors):
                raise BitstreamError("truncated .dnerv file: segments or tensors are missing before IEND")
            if shared and segments and segments[-1].stream is None:
                raise BitstreamError("truncated .dnerv file: the last segment has no CODE chunk")
            ended = True
        elif 65 <= ctype[0] <= 90:
            raise BitstreamError(
                f"this file needs chunk type {ctype.decode()}, which this dnervcodec does not know; upgrade dnervcodec"
            )
        # else: unknown ancillary chunk, CRC-checked and skipped
    if header is None:
        raise BitstreamError("truncated .dnerv file: no HEAD chunk")
    if not ended:
        raise BitstreamError("truncated .dnerv file: no IEND chunk")
    return Container(header=header, segments=segments, ancillary=ancillary)


def chunk_sizes(data: bytes) -> list[tuple[str, str, int]]:
    """(chunk type, tensor or ancillary name or "", bytes incl. framing) for each chunk, for `dnerv info`.

    The first entry is ("SIGNATURE", "", 13): the signature and version (upper case like the critical
    chunks, as it is container overhead), so the sizes add up to the file size.
    Only the framing (signature, lengths, CRCs) is validated here; use read_container for a full check.
    """
    sizes = [("SIGNATURE", "", _PREAMBLE)]
    for ctype, body, total in _chunks(data):
        name = ""
        if ctype == b"TNSR" and len(body) >= 10:
            (name_len,) = struct.unpack(">H", body[8:10])
            name = bytes(body[10 : 10 + name_len]).decode("utf-8", errors="replace")
        elif ctype == b"tEXt":
            raw = bytes(body[: MAX_ANCILLARY_NAME_BYTES + 1])
            name = raw.split(b"\0", 1)[0].decode("utf-8", errors="replace") if b"\0" in raw else ""
        sizes.append((ctype.decode("ascii"), name, total))
    return sizes
