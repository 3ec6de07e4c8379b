"""Turn existing .dnerv files into one results JSON (CompressAI schema) that bench.plot can draw.

    python tools/results_from_files.py "dnerv-300ep" a.dnerv b.dnerv --clip sample:bunny --resolution 160x320 -o out.json

Each file is decoded and measured against the clip it was encoded from, with the same metrics as the RD
benchmark (PSNR RGB per frame averaged, MS-SSIM, bpp of the whole file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: bench/ is not installed
from bench.results import make_doc, save_results  # noqa: E402
from dnervcodec.codec import decode  # noqa: E402
from dnervcodec.metrics import bpp, ms_ssim, psnr
from dnervcodec.video import parse_resolution, read_video


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--clip", required=True)
    p.add_argument("--resolution")
    p.add_argument("--description", default="")
    p.add_argument("-o", "--output", required=True, type=Path)
    args = p.parse_args(argv)
    ref = read_video(args.clip, parse_resolution(args.resolution) if args.resolution else None).frames
    T, H, W, _ = ref.shape
    points = []
    for path in args.files:
        t0 = time.perf_counter()
        frames, _ = decode(path)
        points.append({"bpp": bpp(path.stat().st_size, T, H, W), "psnr-rgb": psnr(ref, frames),
                       "ms-ssim-rgb": ms_ssim(ref, frames), "decode_s": time.perf_counter() - t0,
                       "bytes": path.stat().st_size, "file": path.name})
    save_results(args.output, make_doc(args.name, points, args.description))
    for pt in points:
        print(f"{pt['file']}: {pt['bpp']:.4f} bpp, {pt['psnr-rgb']:.2f} dB, MS-SSIM {pt['ms-ssim-rgb']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
