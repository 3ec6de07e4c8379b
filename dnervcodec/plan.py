"""What an encode will do, decided before any work: its configuration, the model budget and the coded size.

Here, below both `segments.py` (one segment's fit and coding) and `codec.py` (the clip), so that each
segment job can plan its own model from plain data without importing the clip-level pipeline.
A segment of `t` frames in a clip of `T` gets its share of the budget: --bpp applies as it is (the bits
scale with the segment's pixels), --size is split by frames (`t / T` of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .fit import FitConfig
from .models.dnerv import DEFAULT_ARCH, encoder_width
from .models.padding import coded_size, layout_sizes
from .models.sizing import Sizing, budget_from_bpp, parse_budget, size_model


@dataclass(frozen=True)
class EncodeConfig:
    resolution: tuple[int, int] | None = None
    start: int = 0
    num_frames: int | None = None
    size: str | None = None  # stored values ("85k", "0.35M"); None -> bpp
    bpp: float = 0.1  # target bpp at `bits` bits per stored value, used when size is None
    use_diff: bool = True
    diff_stride: int | None = None
    arch: str = DEFAULT_ARCH  # "dnerv" or "dnerv-paper" (models.dnerv.ARCHITECTURES): the encoders' width
    fit: FitConfig = field(default_factory=FitConfig)
    prune: float = 0.0  # fraction of the decoder's parameters removed by channel pruning
    prune_epochs: int = 0  # fine-tuning epochs after pruning
    prune_lr: float | None = None  # peak learning rate of that fine-tuning (default: the fit's)
    bits: int = 8
    qat_epochs: int = 0  # quantization-aware fine-tuning of the stored decoder and embeddings
    qat_lr: float | None = None  # its peak learning rate (default: a tenth of the fit's)
    rd_epochs: int = 0  # rate-distortion fine-tuning with learned steps (0: min/max quantization at `bits`)
    rd_lr: float | None = None  # its peak learning rate for weights and embeddings (default: a tenth of the fit's)
    rd_lambda: float | None = None  # fixed lambda (MSE + lambda * bpp); None: lambda tracks the target size
    value_bits: float = 8.0  # bits a stored value is expected to cost, to size the model for the target
    device: str = "auto"
    denoise: str = "none"  # a denoiser run on the frames before fitting: stbn, nlm (vdp later) or none
    denoise_sigma: float | None = None  # noise level on 0-255; None = estimated
    denoise_iters: int | None = None  # training iterations of a learned denoiser (None = its default)
    segment_frames: int | None = None  # cut the clip into segments of about this many frames (None: one)
    threads: int | None = None  # torch threads of each segment's job (None: 1 with several segments, else torch's)


def _budget(cfg: EncodeConfig, t: int, h: int, w: int, share: float = 1.0) -> int:
    """Stored values: --size (its `share`), or as many as --bpp buys at cfg.bits bits each (before entropy coding)."""
    if cfg.size is not None:
        return int(round(parse_budget(cfg.size) * share))
    return budget_from_bpp(cfg.bpp, t, h, w, cfg.bits)


CONTAINER_BITS = 8 * 700  # signature, header JSON, segment meta and ancillary chunks (about 0.5-0.7 kB)
SEGMENT_BITS = 8 * 256  # of which one segment's own: its SEGM chunk (decoder config JSON) and CODE framing
FILE_BITS = CONTAINER_BITS - SEGMENT_BITS  # and the file's: signature, HEAD, ancillary chunks, IEND


def target_file_bits(cfg: EncodeConfig, t: int, h: int, w: int, share: float = 1.0) -> float:
    """The file size a rate-distortion encode aims at: --bpp, or --size values at 8 bits each (its `share`)."""
    if cfg.size is not None:
        return 8.0 * parse_budget(cfg.size) * share
    return cfg.bpp * t * h * w


def container_bits(share: float = 1.0) -> float:
    """Bits of a file that are not tensor payload, for a segment holding `share` of the clip's frames: its
    own framing and its share of the file's (the whole CONTAINER_BITS for a single segment)."""
    return CONTAINER_BITS if share == 1.0 else SEGMENT_BITS + FILE_BITS * share


def model_budget(cfg: EncodeConfig, t: int, h: int, w: int, share: float = 1.0) -> int:
    """Stored values of the model: the target size over the bits a value is expected to cost."""
    if cfg.rd_epochs <= 0:
        return _budget(cfg, t, h, w, share)
    return max(1000, int(target_file_bits(cfg, t, h, w, share) / cfg.value_bits))


@dataclass(frozen=True)
class EncodePlan:
    """What an encode will code, decided before any work: so the CLI can say it before the fit starts."""

    coded: tuple[int, int]  # frame size the model codes: the input padded to the strides
    sizing: Sizing
    target_bits: float  # file size a rate-distortion stage aims at (grown with the budget)
    notes: tuple[str, ...]
    share: float = 1.0  # the part of the clip's frames (and of a --size budget) this plan is for


def plan_encode(cfg: EncodeConfig, t: int, h: int, w: int, clip_frames: int | None = None,
                coded: tuple[int, int] | None = None) -> EncodePlan:
    """Pad the size to one the strides can build and size the model for the target; where the target cannot
    hold even the smallest model, the smallest model is used and a note says so (never an error).

    For a segment, `t` is its length and `clip_frames` the clip's (a --size budget is split by frames), and
    `coded` the size every segment of the file must share (the file has one coded size).
    """
    share = 1.0 if clip_frames is None else t / clip_frames
    default = coded_size(h, w, cfg.diff_stride)
    budget = model_budget(cfg, t, h, w, share)
    per_frame = budget / t if cfg.size is None else None
    enc = encoder_width(cfg.arch)
    sizing = size_model(*default, t, budget, cfg.use_diff, cfg.diff_stride, budget_per_frame=per_frame, grow=True,
                        enc_width=enc)
    chosen = default
    if sizing.asked is not None or (coded is not None and coded != default):
        # The smallest padding may allow only fine layouts (144x176: diff at 1/16) whose embeddings eat the
        # budget; a little more padding may allow a coarser one that fits, or at least a smaller file.
        options = [(size, size_model(*size, t, budget, cfg.use_diff, d, m, budget_per_frame=per_frame, grow=True,
                                     enc_width=enc))
                   for size, d, m in layout_sizes(h, w, cfg.diff_stride) if coded is None or size == coded]
        start = [(default, sizing)] if coded is None or coded == default else []
        fits = [(a * b, (a, b), s) for (a, b), s in options if s.asked is None]
        if fits:
            _, chosen, sizing = min(fits, key=lambda f: f[0])
        else:
            chosen, sizing = min([*start, *options], key=lambda o: o[1].budget)
    target = target_file_bits(cfg, t, h, w, share)
    notes: tuple[str, ...] = ()
    if sizing.asked is not None:
        value_bits = cfg.value_bits if cfg.rd_epochs > 0 else cfg.bits
        target = max(target, sizing.budget * value_bits)
        asked = f"--size {cfg.size}" if cfg.size is not None else f"a target of {cfg.bpp:g} bpp"
        notes = (f"{asked} cannot hold the smallest model for {t} frames of {h}x{w} ({sizing.budget} values); "
                 f"using it, a file of about {target / 8 / 1000:.0f} kB ({target / (t * h * w):.3g} bpp)",)
    return EncodePlan(chosen, sizing, target, notes, share)


def encode_stages(cfg: EncodeConfig, segments: int = 1, remote: bool = False) -> list[str]:
    """The stages an encode with `cfg` runs, as the progress line labels them: a single segment fitted in
    this process shows its own stages, several segments (or one in another process) one line for them all."""
    stages = [f"denoise {cfg.denoise}"] if cfg.denoise != "none" else []
    if segments > 1 or remote:
        return [*stages, segments_stage(segments)]
    stages.append("fit")
    if cfg.prune > 0 and cfg.prune_epochs > 0:
        stages.append("prune")
    if cfg.rd_epochs > 0:
        stages.append("rd")
    elif cfg.qat_epochs > 0:
        stages.append("qat")
    return stages


def segments_stage(segments: int) -> str:
    """The label of the one progress stage that covers every segment's fitting and coding."""
    return f"{segments} segments" if segments > 1 else "1 segment"
