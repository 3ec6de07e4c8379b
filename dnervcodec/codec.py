"""The public pipeline: encode(source, EncodeConfig) -> bytes and decode(bytes | path) -> (frames, meta).

encode: read -> size the model -> fit -> prune + fine-tune -> embed -> quantize + entropy-code -> container.
The encoders are dropped: the file holds the decoder config, its quantized weights, and the per-frame content
and diff embeddings. decode rebuilds the decoder from the file alone and runs it frame batch by frame batch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .bitstream import Container, decode_segment, encode_quantized_segment, quantize_tensor, read_container, write_container
from .checkpoint import DENOISED_NAME, Checkpointer, frames_digest
from .compress.prune import prune_decoder
from .errors import BitstreamError, ConfigError, DnervError
from .device import resolve_device
from .fit import ClipTensor, FitConfig, evaluate, fit
from .models.cost import DecodeCost, DecodeLimits, decode_cost
from .models.dnerv import DEFAULT_ARCH, DNeRV, Decoder, DecoderConfig, decoder_params, decoder_shapes, encoder_width
from .models.padding import coded_size, layout_sizes, max_coded_side, pad_frames
from .models.sizing import Sizing, budget_from_bpp, parse_budget, size_model
from .progress import Progress
from .rate import header_fields, header_rate
from .qat import qat_config, tune_quantized
from .ranges import frame_range
from .rd import rd_tune
from .video import Video, read_video

MAX_SIDE = 8192
MAX_FRAMES = 1_000_000
MAX_OUTPUT_BYTES = 4 << 30  # a decoded clip larger than this is refused as implausible


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


def denoiser_for(method: str, seed: int = 0, device: str = "auto", iters: int | None = None):
    """The denoiser called `method`, with the options that apply to it (learned ones take seed/device/iters)."""
    from .denoise.base import get_denoiser

    if method in ("stbn", "vdp"):
        options = {"seed": seed, "device": device, **({"iters": iters} if iters else {})}
        return get_denoiser(method, **options)
    return get_denoiser(method)


@dataclass
class EncodeReport:
    """What an encode measured along the way, for the CLI and the benchmarks."""

    data: bytes
    frames: int
    height: int
    width: int
    fps: float
    sizing: Sizing
    decoder_config: DecoderConfig
    psnr_fit: float  # float model after fitting (encoders in the loop)
    psnr_pruned: float | None  # float model after pruning + fine-tuning
    psnr_qat: tuple[float, float] | None  # quantized model before and after quantization-aware fine-tuning
    timings: dict[str, float]
    encoded_frames: np.ndarray  # what the model was fitted to (before padding): the input, or the input after denoising
    predicted_bits: float | None = None  # the rate-distortion fit's estimate of the file's size, in bits
    coded_size: tuple[int, int] | None = None  # the padded size the model codes, when it differs from height x width
    notes: tuple[str, ...] = ()  # what the encoder chose for the user (a grown budget), one line each

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.frames * self.height * self.width)


def _budget(cfg: EncodeConfig, t: int, h: int, w: int) -> int:
    """Stored values: --size, or as many as --bpp buys at cfg.bits bits each (before entropy coding)."""
    return parse_budget(cfg.size) if cfg.size is not None else budget_from_bpp(cfg.bpp, t, h, w, cfg.bits)


CONTAINER_BITS = 8 * 700  # signature, header JSON, segment meta and ancillary chunks (about 0.5-0.7 kB)


def target_file_bits(cfg: EncodeConfig, t: int, h: int, w: int) -> float:
    """The file size a rate-distortion encode aims at: --bpp, or --size values at 8 bits each."""
    if cfg.size is not None:
        return 8.0 * parse_budget(cfg.size)
    return cfg.bpp * t * h * w


def model_budget(cfg: EncodeConfig, t: int, h: int, w: int) -> int:
    """Stored values of the model: the target size over the bits a value is expected to cost."""
    if cfg.rd_epochs <= 0:
        return _budget(cfg, t, h, w)
    return max(1000, int(target_file_bits(cfg, t, h, w) / cfg.value_bits))


@dataclass(frozen=True)
class EncodePlan:
    """What an encode will code, decided before any work: so the CLI can say it before the fit starts."""

    coded: tuple[int, int]  # frame size the model codes: the input padded to the strides
    sizing: Sizing
    target_bits: float  # file size a rate-distortion stage aims at (grown with the budget)
    notes: tuple[str, ...]


def plan_encode(cfg: EncodeConfig, t: int, h: int, w: int) -> EncodePlan:
    """Pad the size to one the strides can build and size the model for the target; where the target cannot
    hold even the smallest model, the smallest model is used and a note says so (never an error)."""
    coded = coded_size(h, w, cfg.diff_stride)
    budget = model_budget(cfg, t, h, w)
    per_frame = budget / t if cfg.size is None else None
    enc = encoder_width(cfg.arch)
    sizing = size_model(*coded, t, budget, cfg.use_diff, cfg.diff_stride, budget_per_frame=per_frame, grow=True,
                        enc_width=enc)
    if sizing.asked is not None:
        # The smallest padding may allow only fine layouts (144x176: diff at 1/16) whose embeddings eat the
        # budget; a little more padding may allow a coarser one that fits, or at least a smaller file.
        options = [(size, size_model(*size, t, budget, cfg.use_diff, d, m, budget_per_frame=per_frame, grow=True,
                                     enc_width=enc))
                   for size, d, m in layout_sizes(h, w, cfg.diff_stride)]
        fits = [(a * b, (a, b), s) for (a, b), s in options if s.asked is None]
        if fits:
            _, coded, sizing = min(fits, key=lambda f: f[0])
        else:
            coded, sizing = min([(coded, sizing), *options], key=lambda o: o[1].budget)
    target = target_file_bits(cfg, t, h, w)
    notes: tuple[str, ...] = ()
    if sizing.asked is not None:
        value_bits = cfg.value_bits if cfg.rd_epochs > 0 else cfg.bits
        target = max(target, sizing.budget * value_bits)
        asked = f"--size {cfg.size}" if cfg.size is not None else f"a target of {cfg.bpp:g} bpp"
        notes = (f"{asked} cannot hold the smallest model for {t} frames of {h}x{w} ({sizing.budget} values); "
                 f"using it, a file of about {target / 8 / 1000:.0f} kB ({target / (t * h * w):.3g} bpp)",)
    return EncodePlan(coded, sizing, target, notes)


@torch.no_grad()
def _embeddings(model: DNeRV, clip: ClipTensor, batch: int = 8) -> tuple[np.ndarray, np.ndarray | None]:
    model.eval()
    content, diff = [], []
    with_diff = model.diff_encoder is not None
    for s in range(0, clip.num_frames, batch):
        idx = torch.arange(s, min(s + batch, clip.num_frames), device=clip.data.device)
        c, d = model.embed(*clip.batch(idx, with_diff))
        content.append(c.float().cpu().contiguous())
        if d is not None:
            diff.append(d.float().cpu().contiguous())
    return torch.cat(content).numpy(), (torch.cat(diff).numpy() if diff else None)


def encode_stages(cfg: EncodeConfig) -> list[str]:
    """The stages an encode with `cfg` runs, as the progress line labels them."""
    stages = [f"denoise {cfg.denoise}"] if cfg.denoise != "none" else []
    stages.append("fit")
    if cfg.prune > 0 and cfg.prune_epochs > 0:
        stages.append("prune")
    if cfg.rd_epochs > 0:
        stages.append("rd")
    elif cfg.qat_epochs > 0:
        stages.append("qat")
    return stages


def denoise_frames(frames: np.ndarray, cfg: EncodeConfig, run_dir: str | os.PathLike | None = None,
                   resume: bool = False, progress: bool | Progress = True) -> np.ndarray:
    """Run the configured denoiser; with a run_dir its output is kept there, so a resumed encode reuses it."""
    key = {"method": cfg.denoise, "sigma": cfg.denoise_sigma, "iters": cfg.denoise_iters, "seed": cfg.fit.seed,
           "digest": frames_digest(frames)}
    work = Path(run_dir) / "denoise" if run_dir is not None else None
    cache = Checkpointer(work, key, name=DENOISED_NAME)
    done = cache.restore(resume)
    if done is not None:
        return done["frames"].numpy()
    denoiser = denoiser_for(cfg.denoise, cfg.fit.seed, cfg.device, cfg.denoise_iters)
    out = denoiser.denoise(frames, cfg.denoise_sigma, progress, run_dir=work, resume=resume)
    cache.save({"frames": torch.from_numpy(out)})
    return out


def encode_video(
    video: Video,
    cfg: EncodeConfig,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | Progress = True,
    ancillary: dict[str, bytes] | None = None,
) -> EncodeReport:
    """Fit, compress and pack one clip. A run_dir keeps checkpoints so an interrupted encode resumes.

    `progress` is a bool or a Progress line; the stages (denoise, fit, prune) share one display.
    """
    display = progress if isinstance(progress, Progress) else Progress(bool(progress), encode_stages(cfg))
    try:
        return _encode(video, cfg, run_dir, resume, display, ancillary)
    finally:
        if display is not progress:
            display.close()


def _encode(video: Video, cfg: EncodeConfig, run_dir: str | os.PathLike | None, resume: bool,
            progress: Progress, ancillary: dict[str, bytes] | None) -> EncodeReport:
    frames = video.frames
    T, H, W, _ = frames.shape
    timings: dict[str, float] = {}
    extra = dict(ancillary or {})
    if cfg.denoise != "none":
        t0 = time.perf_counter()
        frames = denoise_frames(frames, cfg, run_dir, resume, progress)
        timings["denoise"] = time.perf_counter() - t0
        extra["denoise"] = json.dumps({"method": cfg.denoise, "sigma": cfg.denoise_sigma,
                                       "seconds": timings["denoise"]}).encode()
    plan = plan_encode(cfg, T, H, W)
    sizing, source = plan.sizing, frames
    # Every stage fits the padded frames, so its loss counts the replicated border too: a little capacity
    # spent on flat edges, and the reported PSNR is measured after the decoder's crop.
    frames = pad_frames(frames, plan.coded)
    device = resolve_device(cfg.device)

    fitted = fit(frames, sizing.config, cfg.fit, device, run_dir, resume, progress, desc="fit")
    timings["fit"] = fitted.seconds  # all of the fit's time, also the part before an interruption
    model, psnr_pruned = fitted.model, None

    if cfg.prune > 0:
        t0 = time.perf_counter()
        decoder, dec_cfg = prune_decoder(model.decoder, cfg.prune)
        pruned_cfg = replace(sizing.config, decoder=dec_cfg)
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")}
        state.update({f"decoder.{k}": v for k, v in decoder.state_dict().items()})
        if cfg.prune_epochs > 0:
            lr = cfg.prune_lr if cfg.prune_lr is not None else cfg.fit.lr
            tune = replace(cfg.fit, epochs=cfg.prune_epochs, lr=lr, warmup=0.1)
            tune_dir = Path(run_dir) / "prune" if run_dir is not None else None
            tuned = fit(frames, pruned_cfg, tune, device, tune_dir, resume, progress, init_state=state, desc="prune")
            model, psnr_pruned = tuned.model, tuned.psnr
        else:
            model = DNeRV(pruned_cfg)
            model.load_state_dict(state)
            model = model.to(device)
            psnr_pruned = float(evaluate(model, ClipTensor(frames, device)).mean())
        timings["prune"] = time.perf_counter() - t0

    content, diff = _embeddings(model, ClipTensor(frames, device))
    decoder, psnr_qat, quantized, rd_info = model.decoder, None, None, None
    if cfg.rd_epochs > 0:
        t0 = time.perf_counter()
        rd_dir = Path(run_dir) / "rd" if run_dir is not None else None
        target = None if cfg.rd_lambda is not None else plan.target_bits - CONTAINER_BITS
        tuned = rd_tune(frames, decoder, content, diff, qat_config(cfg.fit, cfg.rd_epochs, cfg.rd_lr), target,
                        lam=cfg.rd_lambda if cfg.rd_lambda is not None else 0.01, device=device, run_dir=rd_dir,
                        resume=resume, progress=progress)
        quantized, psnr_qat = tuned.tensors, (tuned.psnr_before, tuned.psnr_after)
        rd_info = {"predicted_bits": tuned.predicted_bits + CONTAINER_BITS, "lambda": tuned.lam}
        timings["rd"] = time.perf_counter() - t0
    elif cfg.qat_epochs > 0:
        t0 = time.perf_counter()
        qat_dir = Path(run_dir) / "qat" if run_dir is not None else None
        tuned = tune_quantized(frames, decoder, content, diff, cfg.bits, qat_config(cfg.fit, cfg.qat_epochs, cfg.qat_lr),
                               device, qat_dir, resume, progress)
        decoder, content, diff = tuned.decoder, tuned.content, tuned.diff
        psnr_qat = (tuned.psnr_before, tuned.psnr_after)
        timings["qat"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    dec_cfg = decoder.cfg
    if quantized is None:
        quantized = {f"w.{name}": quantize_tensor(p.detach().cpu().float().numpy(), cfg.bits, "weight")
                     for name, p in decoder.state_dict().items()}
        quantized["e.content"] = quantize_tensor(content, cfg.bits, "embedding")
        if diff is not None:
            quantized["e.diff"] = quantize_tensor(diff, cfg.bits, "embedding")
    header = {
        "encoder": f"dnervcodec {__version__}",
        "video": {"frames": T, "height": H, "width": W, **header_fields(video.rate),
                  "source_size": list(video.source_size), "start": cfg.start,
                  **({"coded_size": list(plan.coded)} if plan.coded != (H, W) else {})},
        "coding": {"bits": cfg.bits if cfg.rd_epochs <= 0 else "learned", "prune": cfg.prune,
                   "qat_epochs": cfg.qat_epochs, "rd_epochs": cfg.rd_epochs, "budget": sizing.budget},
    }
    segment = encode_quantized_segment({"first_frame": 0, "frames": T, "decoder": dec_cfg.to_dict()}, quantized)
    timings["quantize_entropy_code"] = time.perf_counter() - t0
    extra["timings"] = json.dumps(timings).encode()
    if rd_info is not None:
        extra["rd"] = json.dumps(rd_info).encode()
    data = write_container(Container(header=header, segments=[segment], ancillary=extra))
    return EncodeReport(data, T, H, W, video.fps, sizing, dec_cfg, fitted.psnr, psnr_pruned, psnr_qat, timings,
                        source, None if rd_info is None else rd_info["predicted_bits"],
                        plan.coded if plan.coded != (H, W) else None, plan.notes)


def encode(source: str | os.PathLike, cfg: EncodeConfig, **kwargs) -> bytes:
    """Read `source` (any FFmpeg-readable file, a folder of images or sample:NAME) and return a .dnerv file."""
    video = read_video(source, cfg.resolution, cfg.start, cfg.num_frames)
    return encode_video(video, cfg, **kwargs).data


# ---------------------------------------------------------------- decoding

MAX_DECODER_PARAMS = 1 << 28
MAX_BATCH = 4  # frames run through the decoder at once, when the memory limit allows


@dataclass(frozen=True)
class DecodedSegment:
    first_frame: int
    frames: int
    decoder: DecoderConfig
    weights: dict[str, np.ndarray]
    content: np.ndarray
    diff: np.ndarray | None
    cost: DecodeCost  # per frame, checked against the limits the file was parsed with


@dataclass(frozen=True)
class StreamInfo:
    """Everything `decode` needs, validated; nothing has been run yet."""

    header: dict
    segments: list[DecodedSegment]
    ancillary: dict[str, bytes]
    limits: DecodeLimits = field(default_factory=DecodeLimits)
    container: Container | None = field(default=None, repr=False)  # as read, for `dnerv info`'s byte counts

    @property
    def video(self) -> dict:
        return self.header["video"]


def _int(d: dict, key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise BitstreamError(f"header field '{key}' is missing or out of range")
    return v


class _Claims:
    """Checks the header and each segment's meta as the reader meets them, before any tensor is parsed.

    Everything a file claims that would cost memory or time (frames, frame size, decoder widths, parameters,
    activations and FLOPs per frame) is refused here, from the JSON alone.
    """

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self.frames = self.height = self.width = 0
        self.coded = (0, 0)
        self.segments: list[tuple[int, int, DecoderConfig, DecodeCost]] = []
        self.covered = 0

    def header(self, h: dict, n_segments: int) -> None:
        video = h.get("video")
        if not isinstance(video, dict):
            raise BitstreamError("header has no video description")
        T = _int(video, "frames", 1, MAX_FRAMES)
        H = _int(video, "height", 1, MAX_SIDE)
        W = _int(video, "width", 1, MAX_SIDE)
        if T * H * W * 3 > MAX_OUTPUT_BYTES:
            raise BitstreamError(f"the file claims {T} frames of {H}x{W}, more than this decoder will allocate")
        header_rate(video)
        if n_segments == 0:
            raise BitstreamError("the file holds no segment")
        self.frames, self.height, self.width = T, H, W
        self.coded = _coded_size(video, H, W)

    def segment(self, index: int, meta: dict) -> None:
        first = _int(meta, "first_frame", 0, self.frames - 1)
        n = _int(meta, "frames", 1, self.frames)
        if first != self.covered or first + n > self.frames:
            raise BitstreamError("segments do not tile the clip's frames in order")
        self.covered += n
        try:
            dec = DecoderConfig.from_dict(meta.get("decoder") if isinstance(meta.get("decoder"), dict) else {})
        except (ConfigError, KeyError, TypeError, ValueError, OverflowError) as e:
            raise BitstreamError(f"invalid decoder config in the file: {e}") from None
        if (dec.height, dec.width) != self.coded or max(dec.strides) > 8:
            raise BitstreamError("decoder config does not match the video size")
        if decoder_params(dec) > MAX_DECODER_PARAMS:
            raise BitstreamError("decoder config is implausibly large")
        cost = decode_cost(dec)
        over = self.limits.check(cost)
        if over is not None:
            raise BitstreamError(f"segment {index}: the decoder this file describes {over}; raise that limit "
                                 "only if you trust the file")
        self.segments.append((first, n, dec, cost))


def _coded_size(video: dict, height: int, width: int) -> tuple[int, int]:
    """The decoder's frame size: `coded_size` (3.1, optional; the output padded at the bottom/right), else the
    output size. It must cover the output and exceed it by at most what padding to the strides can need."""
    coded = video.get("coded_size", [height, width])
    if (not isinstance(coded, list) or len(coded) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in coded)):
        raise BitstreamError("header field 'coded_size' is not a pair of integers")
    for c, out in zip(coded, (height, width)):
        if not out <= c <= max_coded_side(out):
            raise BitstreamError(f"coded size {coded[0]}x{coded[1]} does not cover {height}x{width} by padding")
    return coded[0], coded[1]


def parse(data: bytes | bytearray | memoryview, limits: DecodeLimits | None = None) -> StreamInfo:
    """Read and validate a .dnerv file without running the decoder: every shape is checked against the config.

    The header's claims, including each segment's decode cost against `limits` (default `DecodeLimits()`),
    are checked before any tensor is parsed, and the tensors' shapes before any is decoded.
    """
    limits = DecodeLimits() if limits is None else limits
    claims = _Claims(limits)
    c = read_container(bytes(data), claims.header, claims.segment)
    if claims.covered != claims.frames:
        raise BitstreamError("segments do not cover every frame")
    for seg, (_, n, dec, _) in zip(c.segments, claims.segments):
        expected = _expected_shapes(dec, n)
        if set(seg.tensors) != set(expected):
            raise BitstreamError("the file's tensors do not match its decoder config")
        for name, shape in expected.items():
            found = tuple(seg.tensors[name].quant.shape)
            if found != shape:
                raise BitstreamError(f"tensor {name} has shape {found}, expected {shape}")
    segments = []
    for seg, (first, n, dec, cost) in zip(c.segments, claims.segments):
        arrays = decode_segment(seg)
        weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w.")}
        segments.append(DecodedSegment(first, n, dec, weights, arrays["e.content"], arrays.get("e.diff"), cost))
    return StreamInfo(c.header, segments, c.ancillary, limits, c)


def _expected_shapes(dec: DecoderConfig, frames: int) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor a file with this config must hold, computed without building a module."""
    shapes = {f"w.{k}": v for k, v in decoder_shapes(dec).items()}
    shapes["e.content"] = (frames, dec.embed_ch, *dec.embed_hw)
    if dec.diff_ch:
        shapes["e.diff"] = (frames, dec.diff_ch, *dec.diff_hw)
    return shapes


def _run_segment(seg: DecodedSegment, start: int, stop: int, device: torch.device, limits: DecodeLimits,
                 size: tuple[int, int] | None = None) -> np.ndarray:
    """Frames [start, stop) of a segment, cropped to `size` (the decoder may code a padded frame; None: its
    own size). Batches as large as the memory limit allows (at most MAX_BATCH)."""
    with torch.device("meta"):
        decoder = Decoder(seg.decoder)  # no random initialisation: the file's weights are assigned below
    decoder.load_state_dict({k: torch.from_numpy(v) for k, v in seg.weights.items()}, assign=True)
    decoder = decoder.to(device).eval()
    batch = max(1, min(MAX_BATCH, limits.max_memory_bytes // max(seg.cost.peak_bytes, 1)))
    H, W = size if size is not None else (seg.decoder.height, seg.decoder.width)
    out = np.empty((stop - start, H, W, 3), np.uint8)
    with torch.inference_mode():
        for s in range(start, stop, batch):
            e = min(s + batch, stop)
            c = torch.from_numpy(seg.content[s:e]).to(device)
            d = torch.from_numpy(seg.diff[s:e]).to(device) if seg.diff is not None else None
            rgb = decoder(c, d).mul_(255).round_().clamp_(0, 255).to(torch.uint8)
            out[s - start : e - start] = rgb[:, :, :H, :W].permute(0, 2, 3, 1).cpu().numpy()
    return out


def decode(
    source: bytes | bytearray | memoryview | str | os.PathLike,
    start: int = 0,
    num_frames: int | None = None,
    device: str = "cpu",
    limits: DecodeLimits | None = None,
) -> tuple[np.ndarray, dict]:
    """Decode frames [start, start+num_frames) of a .dnerv file (bytes or path) -> (uint8 [T,H,W,3], header).

    `limits` bounds what the file may ask per frame (default `DecodeLimits()`); a file over them is refused
    with BitstreamError before anything is allocated for it. Raise them only for files you trust.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise DnervError(f"input not found: {path}")
        data = path.read_bytes()
    else:
        data = source
    info = parse(data, limits)
    start, stop = frame_range(start, num_frames, info.video["frames"])
    dev = resolve_device(device)
    parts = []
    for seg in info.segments:
        lo, hi = max(start, seg.first_frame), min(stop, seg.first_frame + seg.frames)
        if lo < hi:
            parts.append(_run_segment(seg, lo - seg.first_frame, hi - seg.first_frame, dev, info.limits,
                                      (info.video["height"], info.video["width"])))
    return np.concatenate(parts), info.header


__all__ = ["EncodeConfig", "EncodeReport", "EncodePlan", "plan_encode", "encode", "encode_video", "decode", "parse", "StreamInfo", "DecodeLimits"]
