"""The decode cost bound: computed from a decoder config alone, checked before anything is allocated for it."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from dnervcodec.bitstream import read_container, write_container
from dnervcodec.cli import main
from dnervcodec.codec import decode, parse
from dnervcodec.errors import BitstreamError
from dnervcodec.models.cost import DecodeLimits, decode_cost
from dnervcodec.models.dnerv import Decoder, DecoderConfig, build_config
from dnervcodec.models.sizing import budget_from_bpp, size_model
from tests.hostile import CRAFTED, HUGE_ACTIVATIONS, KERNEL_63, craft

FIXTURE = Path(__file__).parent / "data" / "format-2.0.dnerv"


def _conv_macs_on_meta(cfg: DecoderConfig) -> tuple[int, int]:
    """(MACs of every conv, largest conv input + output elements) of one frame, run on the meta device."""
    macs, largest = 0, 0

    def hook(module: nn.Conv2d, inputs: tuple, out: torch.Tensor) -> None:
        nonlocal macs, largest
        k = module.kernel_size[0] * module.kernel_size[1]
        macs += out.numel() * module.in_channels // module.groups * k
        largest = max(largest, inputs[0].numel() + out.numel())

    with torch.device("meta"):
        decoder = Decoder(cfg)
        for m in decoder.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(hook)
        content = torch.empty(1, cfg.embed_ch, *cfg.embed_hw)
        diff = torch.empty(1, cfg.diff_ch, *cfg.diff_hw) if cfg.diff_ch else None
        decoder(content, diff)
    return macs, largest


def _configs() -> list[DecoderConfig]:
    paper = build_config(640, 1280, 96).decoder
    pruned = replace(build_config(160, 320, 24).decoder, lift_width=19, widths=(17, 13, 9, 6), diff_lift_width=7,
                     diff_width=11)
    big = size_model(2160, 3840, 132, budget_from_bpp(0.1, 132, 2160, 3840)).config.decoder
    return [paper, pruned, build_config(160, 320, 24, use_diff=False).decoder, big, HUGE_ACTIVATIONS, KERNEL_63]


@pytest.mark.parametrize("cfg", _configs(), ids=["paper", "pruned", "no-diff", "4k", "huge", "kernel-63"])
def test_cost_counts_every_convolution(cfg: DecoderConfig) -> None:
    macs, largest = _conv_macs_on_meta(cfg)
    cost = decode_cost(cfg)
    assert cost.macs == macs
    assert cost.peak_bytes >= 4 * largest  # at least one conv's input and output are alive together


def test_peak_estimate_is_not_below_the_measured_peak() -> None:
    """One 320x640 frame through a real decoder: the process's peak RSS grows by no more than the estimate."""
    status = Path("/proc/self/status")
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("peak RSS cannot be reset here")

    def kib(field: str) -> int:
        return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith(field))

    cfg = build_config(320, 640, 64).decoder
    decoder = Decoder(cfg).eval()
    content, diff = torch.randn(1, cfg.embed_ch, *cfg.embed_hw), torch.randn(1, cfg.diff_ch, *cfg.diff_hw)
    with torch.inference_mode():
        decoder(content, diff)  # warm up: library workspaces and thread pools are not per-frame costs
        Path("/proc/self/clear_refs").write_text("5")
        before = kib("VmRSS:")
        decoder(content, diff)
        grown = (kib("VmHWM:") - before) * 1024
    estimate = decode_cost(cfg).peak_bytes
    assert grown <= 1.25 * estimate + (16 << 20), (grown, estimate)


def test_default_limits_pass_the_files_the_codec_makes() -> None:
    """The defaults are derived from the default model family at 4K (DecodeLimits' docstring)."""
    limits = DecodeLimits()
    for h, w, frames, bpp in [(2160, 3840, 132, 0.1), (2160, 3840, 170, 0.3), (1088, 1920, 600, 0.5),
                              (160, 320, 132, 0.1)]:
        cfg = size_model(h, w, frames, budget_from_bpp(bpp, frames, h, w)).config.decoder
        assert limits.check(decode_cost(cfg)) is None, (h, w, frames, bpp)
    four_k = size_model(2160, 3840, 132, budget_from_bpp(0.1, 132, 2160, 3840)).config.decoder
    cost = decode_cost(four_k)
    assert 8 * cost.gflops < limits.max_gflops and 3 * cost.peak_bytes < limits.max_memory_bytes


def _measure(fn) -> tuple[float, int, int]:
    """(seconds, peak traced bytes, peak RSS growth or -1) of fn(), which must raise BitstreamError."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        rss = True
    except OSError:
        rss = False
    status = Path("/proc/self/status")

    def kib(field: str) -> int:
        return next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith(field))

    before = kib("VmRSS:") if rss else 0
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(BitstreamError, match="per frame"):
            fn()
        seconds = time.perf_counter() - t0
        traced = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, traced, (kib("VmHWM:") - before) * 1024 if rss else -1


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_files_are_refused_quickly_with_little_memory(name: str) -> None:
    data = craft(CRAFTED[name])
    assert len(data) < 2 << 20
    for fn in (lambda: parse(data), lambda: decode(data)):
        seconds, traced, grown = _measure(fn)
        assert seconds < 1.0
        assert traced < 16 * len(data) + (1 << 20), traced
        assert grown < 64 << 20, grown


def test_the_bound_is_what_refuses_them() -> None:
    """With the limits raised, the crafted headers parse: every tensor is there with its right shape."""
    huge = DecodeLimits(max_gflops=1e9, max_memory_bytes=1 << 50)
    assert parse(craft(HUGE_ACTIVATIONS), huge).segments[0].cost.peak_bytes > 256 << 30
    assert parse(craft(KERNEL_63), huge).segments[0].cost.gflops > 30_000


def test_limits_can_be_lowered_and_batches_follow_the_memory_limit() -> None:
    data = write_container(read_container(FIXTURE.read_bytes()))
    cost = parse(data).segments[0].cost
    with pytest.raises(BitstreamError, match="GFLOPs per frame"):
        parse(data, DecodeLimits(max_gflops=cost.gflops / 2))
    with pytest.raises(BitstreamError, match="GiB of activations"):
        decode(data, limits=DecodeLimits(max_memory_bytes=cost.peak_bytes - 1))
    frames, _ = decode(data)
    one_at_a_time, _ = decode(data, limits=DecodeLimits(max_memory_bytes=cost.peak_bytes))
    np.testing.assert_array_equal(frames, one_at_a_time)


def _one_line(err: str, start: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), err
    assert "Traceback" not in err
    return lines[0]


def test_cli_refuses_crafted_files_and_the_flags_raise_the_limits(tmp_path: Path, capsys) -> None:
    path = tmp_path / "huge.dnerv"
    path.write_bytes(craft(HUGE_ACTIVATIONS))
    out = tmp_path / "out.mkv"
    assert main(["decode", str(path), "-o", str(out)]) == 2
    assert "--max-decode-memory" in _one_line(capsys.readouterr().err, "dnerv decode: error:")
    assert not out.exists()
    assert main(["info", str(path)]) == 2
    _one_line(capsys.readouterr().err, "dnerv info: error:")
    assert main(["info", str(path), "--max-decode-memory", "1T"]) == 0
    assert "GFLOPs and 5.25e+05 MiB of activations per frame" in capsys.readouterr().out
    assert main(["info", str(FIXTURE), "--max-decode-gflops", "0.001"]) == 2
    assert "--max-decode-gflops" in _one_line(capsys.readouterr().err, "dnerv info: error:")
    assert main(["info", str(FIXTURE), "--max-decode-memory", "lots"]) == 2  # checked when parsed, one line
    assert "is not a size" in capsys.readouterr().err
