"""Pad a frame size up to one the strides can build, as x264 pads to its macroblocks and crops on output.

The strides need both sides to share a total stride that is a multiple of the diff stride (16 for the
paper's layout), so 127x211 cannot be built, but 128x224 can. We code the padded frames and the decoder
crops back. Padding goes at the bottom and right, so cropping is a slice, and it replicates the edge
pixels, which a NeRV decoder reproduces cheaply (a flat continuation, no new content to learn).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .strides import LAYOUTS, plan_strides

PAD_SLACK = 64  # a coded side may exceed twice the output side by no more than this (tiny frames pad a lot)


def max_coded_side(side: int) -> int:
    """The largest coded side a reader accepts for an output side: 2x, or side + 64 for tiny frames."""
    return max(2 * side, side + PAD_SLACK)


def _layouts(diff_stride: int | None) -> list[tuple[int, int]]:
    if diff_stride is None:
        return list(LAYOUTS)
    return [(d, m) for d, m in LAYOUTS if d == diff_stride] or [(diff_stride, 2), (diff_stride, 1)]


def buildable(height: int, width: int, diff_stride: int | None = None,
              layouts: list[tuple[int, int]] | None = None) -> bool:
    """Whether some layout (diff stride, min embedding side) has strides for this size."""
    layouts = _layouts(diff_stride) if layouts is None else layouts
    return any(plan_strides(height, width, d, min_side=m) is not None for d, m in layouts)


def coded_size(height: int, width: int, diff_stride: int | None = None,
               layouts: list[tuple[int, int]] | None = None) -> tuple[int, int]:
    """The smallest size (fewest added pixels, then the smaller largest pad) with both sides >= the frame's
    for which some layout exists: the frame itself when it can be built.

    Every layout's total stride is a multiple of its diff stride, so rounding both sides up to multiples S
    of the smallest diff stride enumerates every candidate worth trying.
    """
    layouts = _layouts(diff_stride) if layouts is None else layouts
    if buildable(height, width, layouts=layouts):
        return height, width
    step = min(d for d, _ in layouts)
    hmax, wmax = max_coded_side(height), max_coded_side(width)
    candidates = set()
    for s in range(step, max(hmax, wmax) + 1, step):
        h, w = -(-height // s) * s, -(-width // s) * s
        if h <= hmax and w <= wmax:
            candidates.add((h, w))
    for h, w in sorted(candidates, key=lambda c: (c[0] * c[1], max(c[0] - height, c[1] - width))):
        if buildable(h, w, layouts=layouts):
            return h, w
    raise ConfigError(f"cannot pad {height}x{width} to a size the model can be built for "
                      f"(sides up to {hmax}x{wmax}); use a larger --resolution")


def layout_sizes(height: int, width: int, diff_stride: int | None = None) -> list[tuple[tuple[int, int], int, int]]:
    """(coded size, diff stride, min side) for each layout: its own smallest padding. A coarser layout
    (fewer embedding values a frame) may need a little more padding than `coded_size`, and pay for it."""
    out = []
    for d, m in _layouts(diff_stride):
        try:
            out.append((coded_size(height, width, layouts=[(d, m)]), d, m))
        except ConfigError:
            continue
    return out


def pad_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [T,H,W,3] padded at the bottom and right to `size` by repeating the edge pixels."""
    T, H, W, _ = frames.shape
    ch, cw = size
    if (ch, cw) == (H, W):
        return frames
    return np.pad(frames, ((0, 0), (0, ch - H), (0, cw - W), (0, 0)), mode="edge")
