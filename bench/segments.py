"""Segments: what cutting a clip costs in bits, what it saves in decoding, memory and wall time.

    python -m bench.segments bits      # bits per frame and PSNR against segment length (bikes, 250 frames, 128x320)
    python -m bench.segments decode    # decode 10 frames of a 10-segment file against decoding the whole file
    python -m bench.segments workers   # wall time with --workers 1 and 2 on the same segments, and the speed-up
    python -m bench.segments memory    # peak RSS of a worker fitting one segment, clip at 1x and 4x the length
    python -m bench.segments scaling   # predicted wall time on N machines from the `workers` run's segment times

Every number comes from real encodes to .dnerv files and real decodes of them, through the public API a
user calls (codec.encode_video with a runner from dnervcodec.runners). Each command writes one JSON file of
raw results (default under docs/data/); `bits` saves every point as it is measured and skips the points
already in its file when rerun. The expected cost of each full run is in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from dnervcodec import __version__
from dnervcodec.codec import EncodeConfig, decode, encode_video
from dnervcodec.fit import FitConfig
from dnervcodec.metrics import psnr
from dnervcodec.models.dnerv import decoder_params
from dnervcodec.outputs import write_bytes_atomic
from dnervcodec.runners import InProcess, LocalProcesses
from dnervcodec.segments import split_frames
from dnervcodec.video import Video, parse_resolution, read_video
from dnervcodec.wording import plural

from .results import ResultsFile

DATA = Path(__file__).resolve().parents[1] / "docs" / "data"
RD_SHARE = 5  # as `dnerv encode`: a fifth of --epochs is rate-distortion fine-tuning


def _cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (local workers are joined)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def encode_config(args: argparse.Namespace, segment_frames: int | None) -> EncodeConfig:
    """`dnerv encode`'s default pipeline: --epochs split 4:1 into fit and rate-distortion, 6 bits a value."""
    rd = args.epochs // RD_SHARE
    return EncodeConfig(bpp=args.bpp, fit=FitConfig(epochs=args.epochs - rd, seed=args.seed), rd_epochs=rd,
                        value_bits=6.0, device="cpu", segment_frames=segment_frames)


def _video(args: argparse.Namespace, frames: int | None = None) -> Video:
    return read_video(args.clip, parse_resolution(args.resolution), 0, frames or args.frames)


def _runner(workers: int):
    """What `dnerv encode --workers K` runs: this process for 1, K local processes otherwise."""
    return LocalProcesses(workers) if workers > 1 else InProcess()


def _meta(args: argparse.Namespace, video: Video, **extra) -> dict:
    T, H, W, _ = video.frames.shape
    return {"clip": args.clip, "frames": T, "height": H, "width": W, "dnervcodec": __version__,
            "torch": torch.__version__, "cpus": os.cpu_count(), **extra}


def _timed_encode(video: Video, cfg: EncodeConfig, runner, quiet: bool) -> tuple:
    cpu, t0 = _cpu_seconds(), time.perf_counter()
    report = encode_video(video, cfg, progress=not quiet, runner=runner)
    return report, time.perf_counter() - t0, _cpu_seconds() - cpu


def cmd_bits(args: argparse.Namespace) -> int:
    video = _video(args)
    T, H, W, _ = video.frames.shape
    meta = _meta(args, video, bpp=args.bpp, epochs=args.epochs, seed=args.seed)
    results = ResultsFile(args.out, "dnerv-segments", "segment_frames",
                          f"dnerv encode at {args.bpp:g} bpp, {args.epochs} epochs, by segment length", meta,
                          columns=("bpp", "psnr-rgb"))
    for length in args.lengths:
        if results.done(length):
            print(f"segment frames {length}: already in {args.out}")
            continue
        cfg = encode_config(args, length if length < T else None)
        report, wall, cpu = _timed_encode(video, cfg, _runner(args.workers), args.quiet)
        decoded, _ = decode(report.data)
        point = {"segment_frames": length, "bpp": report.bpp, "psnr-rgb": psnr(video.frames, decoded),
                 "bits_per_frame": len(report.data) * 8 / T, "bytes": len(report.data),
                 "segments": [s.frames for s in report.segments],
                 "segment_bytes": [len(s.data) for s in report.segments],
                 "decoder_params": [decoder_params(s.decoder_config) for s in report.segments],
                 "psnr_fit": report.psnr_fit, "predicted_bytes": (report.predicted_bits or 0) / 8,
                 "notes": list(report.notes), "encode_wall_s": wall, "encode_cpu_s": cpu, "workers": args.workers}
        results.add(point)
        print(f"segment frames {length}: {plural(len(report.segments), 'segment')}, {report.bpp:.4f} bpp, "
              f"{point['bits_per_frame']:.0f} bits/frame, PSNR {point['psnr-rgb']:.2f} dB, {wall:.0f} s wall")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    video = _video(args)
    T = video.frames.shape[0]
    start = min(args.start, T - args.decode_frames)
    rows = {}
    for name, segments in (("segmented", args.segments), ("whole", 1)):
        length = -(-T // segments) if segments > 1 else None
        report, wall, _ = _timed_encode(video, encode_config(args, length), _runner(args.workers), args.quiet)
        part, whole = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            decode(report.data, start, args.decode_frames)
            part.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            decode(report.data)
            whole.append(time.perf_counter() - t0)
        rows[name] = {"segments": len(report.segments), "bytes": len(report.data),
                      f"decode_{args.decode_frames}_frames_s": statistics.median(part),
                      "decode_all_frames_s": statistics.median(whole), "encode_wall_s": wall,
                      "part_runs_s": part, "whole_runs_s": whole}
        print(f"{name}: {len(report.segments)} segments; {args.decode_frames} frames from {start} in "
              f"{statistics.median(part):.3f} s, all {T} frames in {statistics.median(whole):.3f} s")
    doc = {"meta": _meta(args, video, start=start, decode_frames=args.decode_frames, repeats=args.repeats,
                         epochs=args.epochs, threads=torch.get_num_threads()), "results": rows}
    _write(args.out, doc)
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    video = _video(args)
    T = video.frames.shape[0]
    cfg = encode_config(args, args.segment_frames)
    rows, files = [], set()
    for workers in args.workers_list:
        report, wall, cpu = _timed_encode(video, cfg, _runner(workers), args.quiet)
        files.add(_without_timings(report.data))
        rows.append({"workers": workers, "wall_s": wall, "cpu_s": cpu, "bytes": len(report.data),
                     "segment_s": [s.seconds for s in report.segments], "segments": [s.frames for s in report.segments],
                     "threads_per_segment": report.segments[0].threads})
        print(f"--workers {workers}: {wall:.0f} s wall, {cpu:.0f} s CPU, {len(report.segments)} segments")
    base = rows[0]["wall_s"]
    for row in rows:
        row["speedup"] = base / row["wall_s"]
    doc = {"meta": _meta(args, video, segment_frames=args.segment_frames, epochs=args.epochs, bpp=args.bpp,
                         spans=split_frames(T, args.segment_frames), same_file_for_every_count=len(files) == 1),
           "results": rows}
    _write(args.out, doc)
    print(f"speed-up of --workers {rows[-1]['workers']}: {rows[-1]['speedup']:.2f}x; same file: {len(files) == 1}")
    return 0


def cmd_memory(args: argparse.Namespace) -> int:
    rows = []
    # One thread per job for every clip length (a single segment would otherwise take torch's count).
    cfg = replace(encode_config(args, args.segment_frames), threads=1)
    for scale in args.scales:
        video = _video(args, args.segment_frames * scale)
        runner = InProcess() if args.in_process else LocalProcesses(1)
        report, wall, _ = _timed_encode(video, cfg, runner, args.quiet)
        peaks = [s.peak_rss for s in report.segments]
        rows.append({"scale": scale, "frames": video.frames.shape[0], "segments": len(report.segments),
                     "worker_peak_rss_bytes": max(peaks), "peak_rss_after_each_segment": peaks,
                     "worker_pids": sorted({s.pid for s in report.segments}),
                     "driver_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                     "encode_wall_s": wall})
        print(f"{video.frames.shape[0]} frames in {len(report.segments)} segments: worker peak RSS "
              f"{max(peaks) / 2**20:.0f} MiB")
    doc = {"meta": _meta(args, video, frames=[r["frames"] for r in rows], segment_frames=args.segment_frames,
                         epochs=args.epochs, bpp=args.bpp, threads=1, runner="this process" if args.in_process else "one local worker process"),
           "results": rows}
    _write(args.out, doc)
    return 0


def makespan(seconds: list[float], slots: int) -> float:
    """Wall time of jobs taking `seconds` on `slots` parallel slots, longest first to the freest slot (the
    order Ray's scheduler approaches when every job asks for one CPU); at least the longest job."""
    free = [0.0] * max(1, slots)
    for t in sorted(seconds, reverse=True):
        free[free.index(min(free))] += t
    return max(free)


def cmd_scaling(args: argparse.Namespace) -> int:
    """Predicted wall time and speed-up on N machines of C cores, from a `workers` run's per-segment times."""
    doc = json.loads(Path(args.measured).read_text())
    row = next(r for r in doc["results"] if r["workers"] == args.from_workers)
    seconds, overhead = row["segment_s"], row["wall_s"] - makespan(row["segment_s"], row["workers"])
    serial = sum(seconds) + overhead
    lines = [{"machines": n, "slots": n * args.cores, "predicted_wall_s": makespan(seconds, n * args.cores) + overhead}
             for n in args.machines]
    for line in lines:
        line["speedup_vs_one_job_at_a_time"] = serial / line["predicted_wall_s"]
        print(f"{line['machines']} machine(s), {line['slots']} slots: {line['predicted_wall_s']:.0f} s, "
              f"{line['speedup_vs_one_job_at_a_time']:.2f}x")
    print(f"from {args.measured} (--workers {args.from_workers}): {len(seconds)} segments, "
          f"{sum(seconds):.0f} s of segment jobs, {overhead:.0f} s outside them")
    if args.out:
        _write(args.out, {"meta": {"measured": args.measured, "from_workers": args.from_workers,
                                   "cores_per_machine": args.cores, "segment_s": seconds, "overhead_s": overhead},
                          "results": lines})
    return 0


def _without_timings(data: bytes) -> bytes:
    from dnervcodec.bitstream import read_container, write_container

    container = read_container(data)
    container.ancillary.pop("timings", None)
    return write_container(container)


def _write(path: str, doc: dict) -> None:
    write_bytes_atomic(Path(path), (json.dumps(doc, indent=1) + "\n").encode(), overwrite=True)
    print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.segments", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, out: str, epochs: int, help: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("--clip", default="sample:bikes")
        c.add_argument("--resolution", default="128x320")
        c.add_argument("--frames", type=int, default=None, help="frames to read (default: the whole clip)")
        c.add_argument("--bpp", type=float, default=0.1)
        c.add_argument("--epochs", type=int, default=epochs, help=f"as dnerv encode --epochs (default {epochs})")
        c.add_argument("--seed", type=int, default=0)
        c.add_argument("--quiet", action="store_true")
        c.add_argument("--out", default=str(DATA / out), help=f"JSON results (default docs/data/{out})")
        return c

    c = command("bits", "segments-bits-bikes.json", 50, "bits per frame and PSNR against segment length")
    c.add_argument("--lengths", type=int, nargs="+", default=[33, 66, 132, 250])
    c.add_argument("--workers", type=int, default=2, help="local worker processes (the file does not depend on it)")
    c = command("decode", "segments-decode-bikes.json", 2, "decode a few frames of a segmented file against all")
    c.add_argument("--segments", type=int, default=10)
    c.add_argument("--start", type=int, default=100)
    c.add_argument("--decode-frames", type=int, default=10)
    c.add_argument("--repeats", type=int, default=5)
    c.add_argument("--workers", type=int, default=2)
    c = command("workers", "segments-workers-bikes.json", 50, "wall time and speed-up against --workers")
    c.add_argument("--segment-frames", type=int, default=63)
    c.add_argument("--workers-list", type=int, nargs="+", default=[1, 2], metavar="K")
    c = command("memory", "segments-memory-bikes.json", 2, "a worker's peak RSS for a clip at 1x and 4x the length")
    c.add_argument("--segment-frames", type=int, default=62)
    c.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    c.add_argument("--in-process", action="store_true", help="fit in this process instead of one worker")
    c = sub.add_parser("scaling", help="predicted wall time on N machines from a `workers` run (no encoding)")
    c.add_argument("--measured", default=str(DATA / "segments-workers-bikes.json"))
    c.add_argument("--from-workers", type=int, default=2, help="the run whose per-segment times to use")
    c.add_argument("--cores", type=int, default=2, help="cores (1-thread segment jobs at once) per machine")
    c.add_argument("--machines", type=int, nargs="+", default=[1, 2, 4, 8])
    c.add_argument("--out", default=None, help="also write the table as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"bits": cmd_bits, "decode": cmd_decode, "workers": cmd_workers, "memory": cmd_memory,
                "scaling": cmd_scaling}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
