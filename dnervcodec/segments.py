"""Cut a clip into segments and fit each one: a pure job, (segment frames, EncodeConfig, seed, checkpoint
folder) -> the coded segment as bytes, so any executor (runners.py) can run it and the file does not depend
on which one did.

What makes a job's bytes independent of where it runs:
- its seed is a function of the config's seed and the segment's index (segment 0 keeps the config's seed,
  so a one-segment file is the file of a whole-clip encode), and every random draw in the fit, pruning and
  fine-tuning is seeded from it;
- it runs at a fixed torch thread count carried in the job (CPU float results depend on the intra-op
  thread count: on this machine 1 and 2 threads give other tensors), set on entry and restored on exit;
- it gets only its own frames and plans its own model from plain data (its share of the budget), with the
  coded size that the whole file shares.
A job checkpoints in its own folder (RUN/segment-003/), so a job that is run again resumes there.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .bitstream import Container, Segment, encode_quantized_segment, quantize_tensor, read_container, write_container
from .compress.prune import prune_decoder
from .device import resolve_device
from .errors import ConfigError
from .fit import ClipTensor, evaluate, fit
from .models.dnerv import DNeRV, DecoderConfig
from .models.padding import pad_frames
from .models.sizing import Sizing
from .outputs import write_bytes_atomic
from .plan import EncodeConfig, EncodePlan, container_bits, plan_encode
from .progress import Progress
from .qat import qat_config, tune_quantized
from .rd import rd_tune

SEGMENT_DIR = "segment-{:03d}"
ATTEMPT_NAME = "attempt.json"  # in a job's folder: which encode (and process) runs it, so a retry resumes
SEED_STEP = 0x9E3779B1  # odd, so segment seeds differ for every index below 2**32


def split_frames(total: int, segment_frames: int | None) -> list[tuple[int, int]]:
    """(first frame, frames) of each segment: ceil(total / segment_frames) segments of near-equal length
    (the first ones one frame longer), or the whole clip for None."""
    if total < 1:
        raise ConfigError("a clip needs at least one frame")
    if segment_frames is not None and segment_frames < 1:
        raise ConfigError(f"--segment-frames must be at least 1, got {segment_frames}")
    count = 1 if segment_frames is None else -(-total // segment_frames)
    base, longer = divmod(total, count)
    spans, first = [], 0
    for i in range(count):
        n = base + (1 if i < longer else 0)
        spans.append((first, n))
        first += n
    return spans


def segment_seed(seed: int, index: int) -> int:
    """The seed of segment `index`: the config's for segment 0, a distinct 32-bit value for every other."""
    return (seed + index * SEED_STEP) % 2**32


def job_threads(cfg: EncodeConfig, segments: int) -> int:
    """Torch threads every job of this encode runs with: --threads, else 1 per job with several segments
    (workers then fill the cores, and the bytes do not depend on how many run at once), else the count
    this process runs with now, as a whole-clip encode always did."""
    if cfg.threads is not None:
        return cfg.threads
    return 1 if segments > 1 else torch.get_num_threads()


@dataclass(frozen=True)
class SegmentJob:
    """Everything a segment's encode needs, as plain data that pickles to another process or machine."""

    index: int
    first_frame: int  # in the clip
    frames: np.ndarray  # uint8 [t,H,W,3]: this segment's frames only (denoised when the encode denoises)
    clip_frames: int  # the clip's length: a --size budget is split by frames
    cfg: EncodeConfig  # with this segment's seed in cfg.fit.seed
    threads: int
    coded: tuple[int, int] | None = None  # the coded size the file's segments share (None: plan it here)
    run_dir: str | None = None  # this segment's checkpoint folder
    resume: bool = False
    attempt: str | None = None  # names this encode: a rerun of the job that finds it in run_dir resumes


@dataclass
class SegmentResult:
    """A finished job: the coded segment (a one-segment container, see pack_segment) and what it measured."""

    index: int
    first_frame: int
    frames: int
    data: bytes
    sizing: Sizing
    decoder_config: DecoderConfig
    coded: tuple[int, int]
    psnr_fit: float
    psnr_pruned: float | None
    psnr_qat: tuple[float, float] | None
    predicted_bits: float | None
    lam: float | None
    timings: dict[str, float]
    notes: tuple[str, ...] = ()
    threads: int = 1
    host: str = ""
    pid: int = 0
    peak_rss: int = 0  # bytes: the peak resident memory of the process that ran the job, so far
    seconds: float = 0.0  # wall time of the job
    resumed: bool = False  # a rerun of this encode's job (Ray retried it after losing its worker): it resumed


def make_jobs(frames: np.ndarray, cfg: EncodeConfig, run_dir: str | os.PathLike | None = None,
              resume: bool = False, attempt: str | None = None) -> list[SegmentJob]:
    """The jobs of an encode of `frames` (uint8 [T,H,W,3]) with `cfg`. A single segment checkpoints in the
    run folder itself, as a whole-clip encode always did; several each in RUN/segment-NNN/."""
    T, H, W, _ = frames.shape
    spans = split_frames(T, cfg.segment_frames)
    threads = job_threads(cfg, len(spans))
    coded = _shared_coded_size(cfg, spans, H, W)
    jobs = []
    for i, (first, n) in enumerate(spans):
        folder = None
        if run_dir is not None:
            folder = str(Path(run_dir) / SEGMENT_DIR.format(i)) if len(spans) > 1 else str(run_dir)
        seg_cfg = replace(cfg, fit=replace(cfg.fit, seed=segment_seed(cfg.fit.seed, i)))
        jobs.append(SegmentJob(i, first, frames[first : first + n], T, seg_cfg, threads, coded, folder, resume,
                               attempt))
    return jobs


def _shared_coded_size(cfg: EncodeConfig, spans: list[tuple[int, int]], h: int, w: int) -> tuple[int, int] | None:
    """The coded size every segment of the file uses: the first (longest) segment's own choice (a coarser
    layout's padding can depend on the length); None for a single segment, which plans it as a clip does."""
    if len(spans) == 1:
        return None
    return plan_encode(cfg, spans[0][1], h, w, sum(n for _, n in spans)).coded


def segment_plans(cfg: EncodeConfig, t: int, h: int, w: int) -> list[EncodePlan]:
    """Every segment's plan (coded size, model, notes), as the jobs will make them: for the CLI to say what
    the encode will do before any work."""
    spans = split_frames(t, cfg.segment_frames)
    coded = _shared_coded_size(cfg, spans, h, w)
    return [plan_encode(cfg, n, h, w, t, coded) for _, n in spans]


def planned_steps(cfg: EncodeConfig, frames: int) -> dict[str, int]:
    """Optimizer steps of each training stage of a segment of `frames` frames, for the progress total."""
    per_epoch = -(-frames // cfg.fit.batch_size)
    steps = {"fit": per_epoch * cfg.fit.epochs}
    if cfg.prune > 0 and cfg.prune_epochs > 0:
        steps["prune"] = per_epoch * cfg.prune_epochs
    if cfg.rd_epochs > 0:
        steps["rd"] = per_epoch * cfg.rd_epochs
    elif cfg.qat_epochs > 0:
        steps["qat"] = per_epoch * cfg.qat_epochs
    return steps


def pack_segment(segment: Segment) -> bytes:
    """A coded segment as bytes: a container holding just it, the form every runner hands back."""
    return write_container(Container(header={}, segments=[segment]))


def unpack_segment(data: bytes) -> Segment:
    """The segment of pack_segment's bytes (CRC-checked again on the way back)."""
    return read_container(data).segments[0]


def _claim_attempt(run_dir: str | None, attempt: str | None) -> bool:
    """Record in the job's folder which encode runs it; True when this encode ran it there before (a
    retried job, e.g. after its worker was killed), which then resumes from its checkpoint."""
    if run_dir is None or attempt is None:
        return False
    path = Path(run_dir) / ATTEMPT_NAME
    try:
        before = json.loads(path.read_text()).get("attempt")
    except (OSError, ValueError, AttributeError):
        before = None
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"attempt": attempt, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    write_bytes_atomic(path, json.dumps(record).encode(), overwrite=True)
    return before == attempt


def peak_rss_bytes() -> int:
    """The peak resident memory of this process's own address space so far: Linux's VmHWM, which an exec
    resets. (ru_maxrss would not do: Linux carries it across the fork + exec that starts a worker, so a
    spawned worker reported the parent's size -- 675 MiB against 428 MiB for the same segment, depending on
    what the driver held.) ru_maxrss elsewhere (kB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def run_segment(job: SegmentJob, progress: bool | Progress = False) -> SegmentResult:
    """Fit, (prune,) fine-tune, quantize and entropy-code one segment, at the job's thread count."""
    previous = torch.get_num_threads()
    if job.threads != previous:
        torch.set_num_threads(job.threads)
    try:
        return _run(job, progress)
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def _run(job: SegmentJob, progress: bool | Progress) -> SegmentResult:
    started = time.perf_counter()
    cfg, run_dir = job.cfg, job.run_dir
    retried = _claim_attempt(run_dir, job.attempt)
    resume = retried or job.resume
    # Frames from another process may arrive read-only (Ray maps them from its object store).
    source = job.frames if job.frames.flags.writeable else job.frames.copy()
    t, H, W, _ = source.shape
    plan = plan_encode(cfg, t, H, W, job.clip_frames, job.coded)
    sizing, timings = plan.sizing, {}
    # Every stage fits the padded frames, so its loss counts the replicated border too: a little capacity
    # spent on flat edges, and the reported PSNR is measured after the decoder's crop.
    frames = pad_frames(source, plan.coded)
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

    content, diff = embeddings(model, ClipTensor(frames, device))
    decoder, psnr_qat, quantized, predicted, lam = model.decoder, None, None, None, None
    overhead = container_bits(plan.share)
    if cfg.rd_epochs > 0:
        t0 = time.perf_counter()
        rd_dir = Path(run_dir) / "rd" if run_dir is not None else None
        target = None if cfg.rd_lambda is not None else plan.target_bits - overhead
        tuned = rd_tune(frames, decoder, content, diff, qat_config(cfg.fit, cfg.rd_epochs, cfg.rd_lr), target,
                        lam=cfg.rd_lambda if cfg.rd_lambda is not None else 0.01, device=device, run_dir=rd_dir,
                        resume=resume, progress=progress)
        quantized, psnr_qat = tuned.tensors, (tuned.psnr_before, tuned.psnr_after)
        predicted, lam = tuned.predicted_bits + overhead, tuned.lam
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
    segment = encode_quantized_segment({"first_frame": job.first_frame, "frames": t, "decoder": dec_cfg.to_dict()},
                                       quantized)
    timings["quantize_entropy_code"] = time.perf_counter() - t0
    return SegmentResult(job.index, job.first_frame, t, pack_segment(segment), sizing, dec_cfg, plan.coded,
                         fitted.psnr, psnr_pruned, psnr_qat, predicted, lam, timings, plan.notes,
                         torch.get_num_threads(), socket.gethostname(), os.getpid(), peak_rss_bytes(),
                         time.perf_counter() - started, retried)


@torch.no_grad()
def embeddings(model: DNeRV, clip: ClipTensor, batch: int = 8) -> tuple[np.ndarray, np.ndarray | None]:
    """Every frame's content and diff embedding (float32 [T,...]): what the file stores besides the decoder."""
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
