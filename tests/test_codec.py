"""End to end: encode a tiny clip, decode it, and attack the decoder with damaged and hostile files."""

import copy
from dataclasses import replace
import random
import time
import tracemalloc

import numpy as np
import pytest

from dnervcodec.bitstream import read_container, write_container
from dnervcodec.codec import EncodeConfig, decode, encode_video, parse
from dnervcodec.errors import BitstreamError, ConfigError, DnervError
from dnervcodec.fit import FitConfig
from dnervcodec.metrics import bpp, psnr
from dnervcodec.video import Video
from tests.conftest import moving_shapes


@pytest.fixture(scope="module")
def encoded():
    frames = moving_shapes(6, 32, 64, seed=2)
    cfg = EncodeConfig(size="20k", fit=FitConfig(epochs=25, lr=5e-3, seed=0), device="cpu")
    return frames, encode_video(Video(frames, 25.0, (32, 64)), cfg, progress=False)


def test_round_trip_costs_little_quality(encoded):
    frames, report = encoded
    decoded, header = decode(report.data)
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    q = psnr(frames, decoded)
    assert q > 18
    assert report.psnr_fit - q < 0.2  # 8-bit weights and embeddings
    assert report.bpp == pytest.approx(bpp(len(report.data), 6, 32, 64))
    assert header["video"]["frames"] == 6 and header["coding"]["bits"] == 8


def test_decode_is_deterministic_and_ranges_match(encoded):
    _, report = encoded
    a, _ = decode(report.data)
    b, _ = decode(report.data)
    assert a.tobytes() == b.tobytes()
    part, _ = decode(report.data, start=2, num_frames=3)
    np.testing.assert_array_equal(part, a[2:5])
    with pytest.raises(ConfigError):
        decode(report.data, start=5, num_frames=3)


def test_pruned_and_low_bit_encodes(encoded):
    frames, _ = encoded
    cfg = EncodeConfig(size="20k", fit=FitConfig(epochs=8, lr=5e-3), prune=0.25, prune_epochs=2, bits=6, device="cpu")
    report = encode_video(Video(frames, 25.0, (32, 64)), cfg, progress=False)
    info = parse(report.data)
    seg = info.segments[0]
    assert seg.decoder.lift_width < encoded[1].decoder_config.lift_width  # widths in the header shrank
    assert info.header["coding"]["bits"] == 6
    assert decode(report.data)[0].shape == frames.shape


def _hostile_variants(data: bytes):
    """Well-formed containers (valid CRCs) whose header or segment claims are lies."""
    base = read_container(data)
    edits = {
        "frames huge": lambda c: c.header["video"].update(frames=10**9),
        "frames zero": lambda c: c.header["video"].update(frames=0),
        "height huge": lambda c: c.header["video"].update(height=1 << 20),
        "fps bad": lambda c: c.header["video"].update(fps=-1),
        "fps text": lambda c: c.header["video"].update(fps="25"),
        "no video": lambda c: c.header.pop("video"),
        "widths huge": lambda c: c.segments[0].meta["decoder"].update(widths=[100000] * 3),
        "lift huge": lambda c: c.segments[0].meta["decoder"].update(lift_width=1 << 30),
        "strides wrong": lambda c: c.segments[0].meta["decoder"].update(strides=[2, 2, 2]),
        "kernels negative": lambda c: c.segments[0].meta["decoder"].update(kernels=[-1, 3, 5]),
        "decoder not dict": lambda c: c.segments[0].meta.update(decoder=[1, 2]),
        "decoder missing key": lambda c: c.segments[0].meta["decoder"].pop("widths"),
        "decoder extra key": lambda c: c.segments[0].meta["decoder"].update(evil=1),
        "segment frames": lambda c: c.segments[0].meta.update(frames=5),
        "segment first": lambda c: c.segments[0].meta.update(first_frame=3),
        "no segments": lambda c: c.segments.clear(),
        "tensor dropped": lambda c: c.segments[0].tensors.pop("e.content"),
        "tensor renamed": lambda c: c.segments[0].tensors.update(x=replace(c.segments[0].tensors.pop("e.diff"), name="x")),
        "diff off": lambda c: c.segments[0].meta["decoder"].update(diff_ch=0),
    }
    for name, edit in edits.items():
        c = copy.deepcopy(base)
        edit(c)
        yield name, write_container(c)


def test_hostile_headers_are_refused(encoded):
    """Each lie is refused before the tensors are decoded: the traced allocation stays near the file size."""
    _, report = encoded
    for name, data in _hostile_variants(report.data):
        tracemalloc.start()
        try:
            with pytest.raises(DnervError):
                decode(data)
                pytest.fail(f"accepted: {name}")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * len(data) + (256 << 10), (name, peak)


def test_ten_thousand_corruptions_end_in_our_error_quickly(encoded):
    """Bit flips, truncations, splices and garbage through the full decoder: our error or a valid decode."""
    _, report = encoded
    data = report.data
    rng = random.Random(1234)
    cases, slowest, peak_ratio = 0, 0.0, 0.0
    for i in range(10_000):
        b = bytearray(data)
        kind = i % 5
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(b))
                b[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncation
            b = b[: rng.randrange(len(b))]
        elif kind == 2:  # overwrite a 4-byte field (lengths, counts) with an extreme value
            pos = rng.randrange(len(b) - 4)
            b[pos : pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00"])
        elif kind == 3:  # duplicate or move a slice (repeated / reordered chunks)
            a, c = sorted(rng.sample(range(len(b)), 2))
            piece = b[a:c]
            b = b[:a] + b[c:] if rng.random() < 0.5 else b + piece
            if rng.random() < 0.5:
                pos = rng.randrange(len(b) + 1)
                b = b[:pos] + piece + b[pos:]
        else:  # garbage tail or head
            junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
            b = junk + b if rng.random() < 0.5 else b + junk
        measure = i % 50 == 0
        if measure:
            tracemalloc.start()
        t = time.perf_counter()
        try:
            parse(bytes(b))
        except BitstreamError:
            pass
        slowest = max(slowest, time.perf_counter() - t)
        if measure:
            peak_ratio = max(peak_ratio, tracemalloc.get_traced_memory()[1] / len(data))
            tracemalloc.stop()
        cases += 1
    assert cases == 10_000
    assert slowest < 1.0, slowest
    assert peak_ratio < 64, peak_ratio  # decoded tensors are float32 copies of a few KB of symbols
