"""Decode speed: our decoder's frames/s and time to first frame, next to libx265 decoding the same clip.

    python -m bench.decode_speed                                 # Bunny, 160x320 and 320x640, 0.1 bpp

Decode work depends only on the decoder's shape and the clip's size, not on how long the model was fitted,
so by default each .dnerv file comes from a short real encode (`--epochs`, default 2) at the budget given.
x265 (medium, 4:4:4, CRF chosen to land near the same bpp) encodes the same frames in the same run; both
decoders then run `--repeats` times and the median is reported. Both decode to RGB uint8 frames in memory.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from dnervcodec.codec import EncodeConfig, decode, encode_video
from dnervcodec.fit import FitConfig
from dnervcodec.metrics import bpp
from dnervcodec.models.dnerv import decoder_params
from dnervcodec.video import parse_resolution, read_video

from .baselines import BaselineConfig, decode_timing, encode_baseline


def time_dnerv_decode(data: bytes, repeats: int) -> dict:
    """Median over repeats of the whole decode, and of decoding only the first frame (parse included)."""
    total, first = [], []
    frames = 0
    for _ in range(repeats):
        t = time.perf_counter()
        out, _ = decode(data, 0, 1)
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        out, _ = decode(data)
        total.append(time.perf_counter() - t)
        frames = out.shape[0]
    sec = statistics.median(total)
    return {"frames": frames, "decode_s": sec, "decode_fps": frames / sec, "first_frame_s": statistics.median(first)}


def x265_near_bpp(frames, fps: float, target_bpp: float) -> tuple[bytes, int]:
    """x265-medium-444 stream whose bpp is closest to target over a coarse CRF search."""
    cfg = BaselineConfig.from_name("x265-medium-444")
    T, H, W, _ = frames.shape
    best = None
    for crf in (22, 26, 30, 34, 38):
        data = encode_baseline(frames, fps, cfg, crf)
        gap = abs(bpp(len(data), T, H, W) - target_bpp)
        if best is None or gap < best[0]:
            best = (gap, data, crf)
    return best[1], best[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="sample:bunny")
    p.add_argument("--resolution", action="append", help="HxW, repeatable (default 160x320 and 320x640)")
    p.add_argument("--bpp", type=float, default=0.1, help="budget of the short encodes (default 0.1)")
    p.add_argument("--epochs", type=int, default=2, help="fit epochs of the short encodes (decode cost does not depend on it)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    rows = []
    print(f"torch threads {torch.get_num_threads()}; x265 decoder 1 thread (as in the RD benchmark)")
    for res in args.resolution or ["160x320", "320x640"]:
        size = parse_resolution(res)
        video = read_video(args.clip, size)
        T, H, W, _ = video.frames.shape
        report = encode_video(video, EncodeConfig(bpp=args.bpp, fit=FitConfig(epochs=args.epochs), device="cpu"),
                              progress=False)
        ours = time_dnerv_decode(report.data, args.repeats)
        x265_data, crf = x265_near_bpp(video.frames, video.fps, report.bpp)
        runs = [decode_timing(x265_data, "libx265", threads=1, repeats=1) for _ in range(args.repeats)]
        x265 = {k: statistics.median(r[k] for r in runs) for k in ("decode_rgb_fps", "first_frame_s")}
        row = {
            "resolution": res, "frames": T,
            "dnerv_bpp": report.bpp, "dnerv_decoder_params": decoder_params(report.decoder_config),
            "dnerv_fps": ours["decode_fps"], "dnerv_first_frame_s": ours["first_frame_s"],
            "x265_crf": crf, "x265_bpp": bpp(len(x265_data), T, H, W),
            "x265_fps": x265["decode_rgb_fps"], "x265_first_frame_s": x265["first_frame_s"],
        }
        rows.append(row)
        print(f"{res}: dnerv {row['dnerv_fps']:.1f} frames/s, first frame {1000 * row['dnerv_first_frame_s']:.0f} ms "
              f"({row['dnerv_bpp']:.3f} bpp) | x265 {row['x265_fps']:.1f} frames/s, first frame "
              f"{1000 * row['x265_first_frame_s']:.0f} ms ({row['x265_bpp']:.3f} bpp, crf {crf}) | "
              f"x265/dnerv speed {row['x265_fps'] / row['dnerv_fps']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
