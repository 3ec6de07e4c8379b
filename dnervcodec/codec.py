"""The public pipeline: encode(source, EncodeConfig) -> bytes and decode(bytes | path) -> (frames, meta).

encode: read -> (denoise) -> cut into segments -> per segment (segments.py, run by a runners.py executor):
size the model -> fit -> prune + fine-tune -> embed -> quantize + entropy-code -> container, in segment order.
The encoders are dropped: the file holds the decoder config, its quantized weights, and the per-frame content
and diff embeddings. decode rebuilds the decoder from the file alone and runs it frame batch by frame batch.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .bitstream import Container, Segment, decode_segment, read_container, write_container
from .checkpoint import DENOISED_NAME, Checkpointer, frames_digest
from .device import resolve_device
from .errors import BitstreamError, ConfigError, DnervError
from .models.cost import DecodeCost, DecodeLimits, decode_cost
from .models.dnerv import Decoder, DecoderConfig, decoder_params, decoder_shapes
from .models.padding import max_coded_side
from .models.sizing import Sizing
from .plan import EncodeConfig, EncodePlan, encode_stages, plan_encode, segments_stage  # noqa: F401  (public API)
from .progress import Progress, SegmentsProgress
from .rate import header_fields, header_rate
from .ranges import frame_range
from .runners import InProcess, Runner
from .segments import SegmentJob, SegmentResult, make_jobs, planned_steps, run_segment, split_frames, unpack_segment
from .segments import embeddings as _embeddings  # noqa: F401  (its name here before segments.py; tests use it)
from .video import Video, read_video

MAX_SIDE = 8192
MAX_FRAMES = 1_000_000
MAX_OUTPUT_BYTES = 4 << 30  # a decoded clip larger than this is refused as implausible


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
    segments: list[SegmentResult] = field(default_factory=list)  # each segment's own figures, in order
    seconds: float = 0.0  # wall time of the encode (denoising included)

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.frames * self.height * self.width)


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
    runner: Runner | None = None,
) -> EncodeReport:
    """Fit, compress and pack one clip. A run_dir keeps checkpoints so an interrupted encode resumes.

    `progress` is a bool or a Progress line; the stages (denoise, fit, prune) share one display. With
    `cfg.segment_frames` the clip is cut into segments, each fitted on its own by `runner` (default: in this
    process); the file does not depend on the runner.
    """
    runner = runner if runner is not None else InProcess()
    segments = len(split_frames(video.frames.shape[0], cfg.segment_frames))
    display = progress if isinstance(progress, Progress) else Progress(
        bool(progress), encode_stages(cfg, segments, runner.remote))
    try:
        return _encode(video, cfg, run_dir, resume, display, ancillary, runner)
    finally:
        if display is not progress:
            display.close()


def _encode(video: Video, cfg: EncodeConfig, run_dir: str | os.PathLike | None, resume: bool,
            progress: Progress, ancillary: dict[str, bytes] | None, runner: Runner) -> EncodeReport:
    """The clip around the segment jobs: denoise the whole clip, run the jobs, write header and container."""
    started = time.perf_counter()
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
    results = run_jobs(make_jobs(frames, cfg, run_dir, resume), runner, progress)
    coded = results[0].coded
    for r in results:
        for stage, seconds in r.timings.items():  # summed over segments: work done, not wall time
            timings[stage] = timings.get(stage, 0.0) + seconds
    coding = {"bits": cfg.bits if cfg.rd_epochs <= 0 else "learned", "prune": cfg.prune,
              "qat_epochs": cfg.qat_epochs, "rd_epochs": cfg.rd_epochs,
              "budget": sum(r.sizing.budget for r in results)}
    if len(results) > 1:
        coding["segment_frames"] = cfg.segment_frames
    header = {
        "encoder": f"dnervcodec {__version__}",
        "video": {"frames": T, "height": H, "width": W, **header_fields(video.rate),
                  "source_size": list(video.source_size), "start": cfg.start,
                  **({"coded_size": list(coded)} if coded != (H, W) else {})},
        "coding": coding,
    }
    seconds = time.perf_counter() - started
    if len(results) > 1:
        timings["wall"] = seconds
    extra["timings"] = json.dumps(timings).encode()
    predicted = None
    if results[0].predicted_bits is not None:
        predicted = sum(r.predicted_bits for r in results)
        lam = results[0].lam if len(results) == 1 else [r.lam for r in results]
        extra["rd"] = json.dumps({"predicted_bits": predicted, "lambda": lam}).encode()
    data = write_container(Container(header=header, segments=[unpack_segment(r.data) for r in results],
                                     ancillary=extra))
    return EncodeReport(data, T, H, W, video.fps, results[0].sizing, results[0].decoder_config,
                        _frame_mean([r.psnr_fit for r in results], results),
                        _frame_mean([r.psnr_pruned for r in results], results),
                        _qat_mean(results), timings, frames, predicted, coded if coded != (H, W) else None,
                        tuple(dict.fromkeys(n for r in results for n in r.notes)), results, seconds)


def run_jobs(jobs: list[SegmentJob], runner: Runner, progress: Progress) -> list[SegmentResult]:
    """Every job's result, in segment order. A single job in this process draws its own stages on the
    progress line, as a whole-clip encode always did; otherwise one stage covers all segments."""
    if len(jobs) == 1 and not runner.remote:
        return [run_segment(jobs[0], progress)]
    planned = {job.index: planned_steps(job.cfg, len(job.frames)) for job in jobs}
    line = SegmentsProgress(progress, segments_stage(len(jobs)), planned)
    results: dict[int, SegmentResult] = {}
    try:
        for result in runner.run(jobs, line):
            results[result.index] = result
            line.segment_done(result.index)
    finally:
        line.close()
    codeds = {r.coded for r in results.values()}
    if len(codeds) != 1:  # make_jobs gives every job the same coded size; a job that disagrees is our bug
        raise RuntimeError(f"segments coded at different sizes: {sorted(codeds)}")
    return [results[i] for i in range(len(jobs))]


def _frame_mean(values: list[float | None], results: list[SegmentResult]) -> float | None:
    """A per-segment PSNR averaged over the clip's frames (each segment's is its frames' mean)."""
    if values[0] is None or len(values) == 1:
        return values[0]
    return float(sum(v * r.frames for v, r in zip(values, results)) / sum(r.frames for r in results))


def _qat_mean(results: list[SegmentResult]) -> tuple[float, float] | None:
    if results[0].psnr_qat is None:
        return None
    return (_frame_mean([r.psnr_qat[0] for r in results], results),
            _frame_mean([r.psnr_qat[1] for r in results], results))


def encode(source: str | os.PathLike, cfg: EncodeConfig, **kwargs) -> bytes:
    """Read `source` (any FFmpeg-readable file, a folder of images or sample:NAME) and return a .dnerv file."""
    video = read_video(source, cfg.resolution, cfg.start, cfg.num_frames)
    return encode_video(video, cfg, **kwargs).data


# ---------------------------------------------------------------- decoding

MAX_DECODER_PARAMS = 1 << 28
MAX_BATCH = 4  # frames run through the decoder at once, when the memory limit allows


@dataclass(frozen=True)
class DecodedSegment:
    """A validated segment whose tensors are entropy-decoded on first use, so decoding a frame range pays
    only for the segments it touches. Every check on its tensors (names, shapes, symbol counts against the
    coded size) ran when the file was parsed, before any of them is decoded."""

    first_frame: int
    frames: int
    decoder: DecoderConfig
    cost: DecodeCost  # per frame, checked against the limits the file was parsed with
    coded: Segment = field(repr=False)

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every tensor, entropy-decoded and dequantized (once)."""
        return decode_segment(self.coded)

    @property
    def decoded(self) -> bool:
        """Whether this segment's tensors have been decoded."""
        return "arrays" in self.__dict__

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return {k[2:]: v for k, v in self.arrays.items() if k.startswith("w.")}

    @property
    def content(self) -> np.ndarray:
        return self.arrays["e.content"]

    @property
    def diff(self) -> np.ndarray | None:
        return self.arrays.get("e.diff")


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
    are checked before any tensor is parsed, and the tensors' shapes before any is decoded. No tensor is
    decoded here: a segment's are decoded when it is first used (DecodedSegment.arrays).
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
    segments = [DecodedSegment(first, n, dec, cost, seg) for seg, (first, n, dec, cost) in zip(c.segments, claims.segments)]
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
