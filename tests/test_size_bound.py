"""A .dnerv file is never larger than its raw values plus a fixed header, at any --bits (issue 17 item 5:
at 16 bits every tensor went categorical and a 10k-value model took 180 KB for 20 KB of raw values)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dnervcodec.bitstream import Container, Segment, encode_segment, write_container
from dnervcodec.compress.entropy import encode_stream, encode_symbols

SHAPES = {"w.conv": ((48, 16, 3, 3), "weight"), "w.bias": ((48,), "weight"), "w.head": ((3, 48, 3, 3), "weight"),
          "e.content": ((6, 16, 2, 4), "embedding")}  # about 9k values, from 3 to 7k per tensor


def arrays(seed: int = 0) -> dict[str, tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, kind) in SHAPES.items():
        scale = rng.uniform(0.5, 2, (shape[0],) + (1,) * (len(shape) - 1))  # channels differ, as in a fit
        out[name] = ((rng.normal(0, 0.05, shape) * scale).astype(np.float32), kind)
    return out


def file_bytes(seg: Segment) -> int:
    return len(write_container(Container(header={"video": {"frames": 6}}, segments=[seg], ancillary={})))


def all_uniform(seg: Segment, bits: int) -> Segment:
    """The same segment with every tensor stored as raw bits: the yardstick."""
    from dnervcodec.bitstream import segment_symbols

    symbols = segment_symbols(seg)
    tensors = {n: dataclasses.replace(t, coded=encode_symbols(symbols[n], 1 << bits, model="uniform",
                                                               own_words=False)) for n, t in seg.tensors.items()}
    words = encode_stream([(t.coded, symbols[n]) for n, t in tensors.items()])
    return Segment(meta=seg.meta, tensors=tensors, stream=words)


@pytest.mark.parametrize("bits", range(2, 17))
def test_a_file_is_at_most_its_raw_values_plus_a_fixed_header(bits: int) -> None:
    seg = encode_segment({"first_frame": 0, "frames": 6}, arrays(), bits)
    raw = sum(int(np.prod(shape)) for shape, _ in SHAPES.values()) * bits / 8
    coded, yardstick = file_bytes(seg), file_bytes(all_uniform(seg, bits))
    header = yardstick - raw  # container, chunk framing, names, shapes, quantization scales and offsets
    assert 0 < header < 900
    assert coded <= raw + header + 8, (coded, raw, header)  # 8 bytes: the coder's flush rounds differently
