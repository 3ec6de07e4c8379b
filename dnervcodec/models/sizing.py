"""Turn a budget ("0.35M", "85k", or a target bpp at 8 bits) into a model configuration.

The budget counts what the bitstream stores: decoder weights plus every content and diff embedding, as
HNeRV's --modelsize counts the decoder and embeddings. At small frame sizes the embeddings are a large
part of it: DNeRV's diff embedding at 1/16 of the frame costs 0.125 bpp at 8 bits on its own, so where the
paper's layout leaves too little for the decoder we move to coarser layouts (diff at 1/32, then 1/64,
1-pixel-high content embeddings) and say so in the returned layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..options import MAX_BUDGET, parse_budget  # noqa: F401  (parsed without torch, re-exported)
from .dnerv import DecoderConfig, ModelConfig, build_config, decoder_params, stored_values
from .strides import LAYOUTS, plan_strides

EMBEDDING_SHARE = 1 / 3  # at most this part of the budget goes to embeddings when choosing a layout


def budget_from_bpp(bpp: float, num_frames: int, height: int, width: int, bits: int = 8) -> int:
    """Stored values that give `bpp` at `bits` bits each (before entropy coding)."""
    if not 0 < bpp < 64:
        raise ConfigError(f"target bpp {bpp} is out of range")
    return int(bpp * num_frames * height * width / bits)


@dataclass(frozen=True)
class Sizing:
    config: ModelConfig
    budget: int
    stored: int  # values the bitstream will store
    diff_stride: int
    min_side: int
    asked: int | None = None  # the budget asked for, when it could not hold the smallest model and grew


def choose_layout(height: int, width: int, num_frames: int, budget: int, diff_ch: int = 2) -> tuple[int, int]:
    """(diff stride, min embedding side): the paper's layout unless its embeddings eat the budget."""
    usable = []
    for diff_stride, min_side in LAYOUTS:
        strides = plan_strides(height, width, diff_stride, min_side=min_side)
        if strides is None:
            continue
        cfg = build_config(height, width, 16, True, diff_stride, diff_ch=diff_ch, min_side=min_side).decoder
        embed = num_frames * cfg.embedding_values_per_frame()
        if embed <= EMBEDDING_SHARE * budget:
            return diff_stride, min_side
        usable.append((embed, diff_stride, min_side))
    if not usable:
        # No layout exists for this size: let build_config raise the error that names sizes that work.
        build_config(height, width, 16, True, LAYOUTS[0][0])
    _, diff_stride, min_side = min(usable)  # none leaves 2/3 to the decoder: the leanest embeddings
    return diff_stride, min_side


def size_model(
    height: int,
    width: int,
    num_frames: int,
    budget: int,
    use_diff: bool = True,
    diff_stride: int | None = None,
    min_side: int | None = None,
    budget_per_frame: float | None = None,
    grow: bool = False,
    **build_kwargs,
) -> Sizing:
    """The widest model whose stored values fit the budget.

    `budget_per_frame` says the budget grows with the clip (a --bpp target gives this many values a
    frame); it only changes the advice when the budget is too small, as more frames then help, not fewer.
    With `grow`, a budget too small for the smallest model becomes that model's size (`asked` keeps the
    request) instead of an error: an encoder should make the smallest file it can rather than refuse.

    The layout (diff stride, embedding size) is chosen with the diff stream counted even when
    `use_diff=False`, so that the no-diff ablation has the same strides and differs only by the diff
    stream and a wider decoder at the same budget.
    """
    if diff_stride is None or min_side is None:
        auto_stride, auto_side = choose_layout(height, width, num_frames, budget)
        diff_stride = diff_stride or auto_stride
        min_side = min_side or auto_side

    def make(lift: int) -> ModelConfig:
        # HNeRV keeps widths >= 12; tiny budgets need narrower late stages, so the floor follows the lift.
        floor = build_kwargs.pop("min_width", None) or min(12, max(4, lift // 2))
        return build_config(height, width, lift, use_diff, diff_stride, min_side=min_side, min_width=floor, **build_kwargs)

    lo, hi = 4, 4096
    smallest = make(lo).decoder
    if stored_values(smallest, num_frames) > budget:
        if grow:
            need = stored_values(smallest, num_frames)
            return Sizing(make(lo), need, need, diff_stride, min_side, asked=budget)
        raise ConfigError(_too_small(smallest, height, width, num_frames, budget, budget_per_frame))
    while lo < hi:  # largest lift width that fits
        mid = (lo + hi + 1) // 2
        if stored_values(make(mid).decoder, num_frames) <= budget:
            lo = mid
        else:
            hi = mid - 1
    cfg = make(lo)
    return Sizing(cfg, budget, stored_values(cfg.decoder, num_frames), diff_stride, min_side)


def _too_small(smallest: DecoderConfig, height: int, width: int, frames: int, budget: int,
               budget_per_frame: float | None) -> str:
    """Why the budget cannot be met, and advice that is true for this kind of budget: the smallest model
    is a fixed decoder plus embeddings per frame, so a fixed --size fits fewer frames, while a --bpp
    budget (values per frame) fits more frames once it exceeds the embeddings' share."""
    per_frame = smallest.embedding_values_per_frame()
    fixed = decoder_params(smallest)
    need = fixed + frames * per_frame
    text = (f"budget of {budget} values is too small for {height}x{width}x{frames}: the smallest model stores "
            f"{need} (decoder {fixed}, embeddings {per_frame} a frame); ")
    if budget_per_frame is None:
        text += f"raise --size to at least {need}"
        most = (budget - fixed) // per_frame if budget > fixed and per_frame else 0
        return text + (f", use at most about {most} frames" if most >= 1 else "") + ", or a smaller --resolution"
    text += f"raise --bpp at least {need / budget:.2g}-fold"
    if budget_per_frame > per_frame:
        least = math.ceil(fixed / (budget_per_frame - per_frame))
        text += f", or use at least about {least} frames: the decoder is shared by every frame"
    return text
