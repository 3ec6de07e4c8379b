"""What decoding one frame costs, from a `DecoderConfig` alone: multiply-accumulates and peak activation bytes.

A bitstream's header describes the decoder, and a small file can describe a decoder that needs hundreds of
gigabytes or tens of teraflops per frame (the container bounds lengths and parameter counts, not the work
they imply). The reader computes this cost from the config, with integer arithmetic and without building a
module, and refuses a file over `DecodeLimits` before allocating anything for it.

The count follows `Decoder.forward` step by step (float32, one frame):
  lift        content embedding in, lifted map out
  diff branch (at the fusion stage) diff lift, its NeRV block (conv 3x3, GELU)
  CCU         [c, d] concatenated, proposal and gate convs, tanh, sigmoid, the blend
  NeRV block  input, conv output, PixelShuffle output (then GELU in place of the conv output)
  head        3x3 conv to RGB, sigmoid, the uint8 conversion
plus, for every k x k convolution, an im2col-sized workspace (input channels * k^2 * output positions) that
a CPU convolution may use. The peak is the largest set of tensors alive at once, times 4 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import DEFAULT_MAX_DECODE_GFLOPS, DEFAULT_MAX_DECODE_MEMORY
from .dnerv import DecoderConfig

FLOAT_BYTES = 4


@dataclass(frozen=True)
class DecodeCost:
    """Per frame: multiply-accumulates of every convolution, and the peak bytes of live activations."""

    macs: int
    peak_bytes: int

    @property
    def gflops(self) -> float:
        """Floating-point operations (2 per multiply-accumulate), in units of 10^9."""
        return 2 * self.macs / 1e9


@dataclass(frozen=True)
class DecodeLimits:
    """The most a file may ask of the decoder per frame; raise them (CLI flags) only for files you trust.

    Defaults: the default model family at 2160x3840 (132 frames at the default 0.1 bpp) needs 2.0 TFLOPs and
    4.1 GiB of activations per frame; the limits are 10x and 4x that, which pass every 4K clip the output
    limit allows (up to 172 frames) up to 0.3 bpp, and 600 frames of 1080p up to 0.5 bpp. See
    docs/robustness.md.
    """

    max_gflops: float = DEFAULT_MAX_DECODE_GFLOPS
    max_memory_bytes: int = DEFAULT_MAX_DECODE_MEMORY

    def check(self, cost: DecodeCost) -> str | None:
        """None if the cost is within the limits, else a sentence naming the limit it breaks and its flag."""
        if cost.peak_bytes > self.max_memory_bytes:
            return (f"needs {_num(cost.peak_bytes / 2**30)} GiB of activations per frame, over the limit of "
                    f"{_num(self.max_memory_bytes / 2**30)} GiB (--max-decode-memory, DecodeLimits.max_memory_bytes)")
        if cost.gflops > self.max_gflops:
            return (f"needs {_num(cost.gflops)} GFLOPs per frame, over the limit of {_num(self.max_gflops)} "
                    "(--max-decode-gflops, DecodeLimits.max_gflops)")
        return None


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _conv(c_in: int, c_out: int, k: int, positions: int) -> tuple[int, int]:
    """(MACs, workspace elements) of a k x k convolution producing `positions` output pixels."""
    return c_in * c_out * k * k * positions, c_in * positions


def decode_cost(cfg: DecoderConfig) -> DecodeCost:
    """MACs and peak activation bytes of decoding one frame with this config (no module is built)."""
    h, w = cfg.embed_hw
    hw = h * w
    macs, _ = _conv(cfg.embed_ch, cfg.lift_width, 1, hw)
    peak = (cfg.embed_ch + cfg.lift_width) * hw
    for i, (s, k, c_out) in enumerate(zip(cfg.strides, cfg.kernels, cfg.widths)):
        c_in = cfg.stage_in_width(i)
        if i == cfg.fuse_at:
            lw, dw = cfg.diff_lift_width, cfg.diff_width
            lift_macs, _ = _conv(cfg.diff_ch, lw, 1, hw)
            block_macs, block_ws = _conv(lw, dw, 3, hw)
            ccu_macs, ccu_ws = _conv(c_in + dw, c_in, 3, hw)
            macs += lift_macs + block_macs + 2 * ccu_macs
            branch = (c_in + cfg.diff_ch + lw + 2 * dw) * hw + block_ws  # x held; diff lift, its conv, GELU
            ccu = (c_in + dw + (c_in + dw) + 4 * c_in) * hw + ccu_ws  # x, d, [x, d], proposal, gate, activations
            peak = max(peak, branch, ccu)
        out = c_out * s * s * hw
        conv_macs, ws = _conv(c_in, c_out * s * s, k, hw)
        macs += conv_macs
        peak = max(peak, c_in * hw + ws + 2 * out)  # input, workspace, conv output and its shuffled copy
        h, w = h * s, w * s
        hw = h * w
    head_macs, head_ws = _conv(cfg.widths[-1], 3, 3, hw)
    macs += head_macs
    peak = max(peak, cfg.widths[-1] * hw + head_ws + 2 * 3 * hw)
    return DecodeCost(macs=macs, peak_bytes=FLOAT_BYTES * peak)


__all__ = ["DecodeCost", "DecodeLimits", "decode_cost"]
