"""The rate-distortion fit against the 0.3.0 pipeline and the standard codecs, at about equal encode CPU time.

    python -m bench.rd_vs_ptq --clip bunny --resolution 160x320 --out runs/rd-vs-ptq-bunny --only ptq
    python -m bench.rd_vs_ptq --clip bunny --resolution 160x320 --out runs/rd-vs-ptq-bunny --only rd
    python -m bench.rd_vs_ptq --clip bunny --resolution 160x320 --out runs/rd-vs-ptq-bunny --report-only

Codecs: x264/x265 anchors; `dnerv-ptq`, the 0.3.0 pipeline (the paper's width-64 encoders, fit, then 8-bit
min/max quantization, model sized at 8 bits a value); `dnerv-rd`, the rate-distortion pipeline (a larger model sized at `--value-bits`,
fewer fit epochs plus rate-distortion epochs, so its encode takes about the CPU time of dnerv-ptq; every
point records `encode_cpu_s` to check). Every point is a real encode to a file and a real decode of it.
`--only` measures one group, so two processes (one per core) can share an output folder; `--report-only`
then draws the plots and BD tables from every saved point.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from dnervcodec.errors import DnervError
from dnervcodec.video import parse_resolution, read_video, resolve_input

from .dnerv_point import dnerv_spec
from .rd import baseline_spec, run_benchmark

ANCHORS = ("x264-medium-420", "x265-medium-420", "x265-veryslow-444")
BUDGETS = (0.05, 0.1, 0.2)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.rd_vs_ptq", description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default="bunny")
    ap.add_argument("--resolution", default="160x320")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS), help="target bpp of each point")
    ap.add_argument("--ptq-epochs", type=int, default=50, help="fit epochs of dnerv-ptq (0.3.0's CLI default)")
    ap.add_argument("--rd-fit-epochs", type=int, default=40, help="fit epochs of dnerv-rd")
    ap.add_argument("--rd-epochs", type=int, default=8, help="rate-distortion epochs of dnerv-rd")
    ap.add_argument("--value-bits", type=float, default=6.0, help="dnerv-rd's model sizing, bits a value")
    ap.add_argument("--arch", default="dnerv", help="dnerv-rd's architecture (dnerv-ptq is 0.3.0's: dnerv-paper)")
    ap.add_argument("--only", choices=["anchors", "ptq", "rd"], nargs="+", help="measure only these groups")
    ap.add_argument("--report-only", action="store_true", help="redraw plots and tables from saved points")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    groups = {
        "anchors": [baseline_spec(a) for a in ANCHORS],
        "ptq": [dnerv_spec("dnerv-ptq", args.ptq_epochs, args.budgets, work_dir=Path(args.out) / "work" / "ptq",
                           arch="dnerv-paper")],
        "rd": [dnerv_spec("dnerv-rd", args.rd_fit_epochs, args.budgets, rd_epochs=args.rd_epochs,
                          value_bits=args.value_bits, work_dir=Path(args.out) / "work" / "rd", arch=args.arch)],
    }
    chosen = args.only or list(groups)
    codecs = [c for g in groups for c in groups[g] if args.report_only or g in chosen]
    try:
        video = read_video(resolve_input(args.clip), parse_resolution(args.resolution), num_frames=args.frames)
        t, h, w = video.frames.shape[:3]
        meta = {"clip": args.clip, "resolution": f"{h}x{w}", "frames": t, "fps": video.fps}
        run_benchmark(video.frames, video.fps, codecs, args.out, meta, test="dnerv-rd" if args.report_only else None,
                      measure=not args.report_only, title=f"{args.clip} {h}x{w}, {t} frames")
    except DnervError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
