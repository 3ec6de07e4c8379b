"""How well the blind noise-level estimates find the noise: AWGN and Poisson-Gaussian on the sample clips.

    python -m bench.denoise_noise --frames 40 --out docs/data/denoise-noise-estimates.json

Per clip and noise: the sigma a denoiser should be told (AWGN's sigma; Poisson-Gaussian's effective sigma
on the clean clip, sqrt of the mean variance, before clipping), the RMS of the noise actually added (after
rounding and clipping to 0-255), estimate_noise (sigma, gain, read noise: what `dnerv denoise` uses
without --sigma) and estimate_sigma (the single-sigma MAD estimate it replaced). Seconds of CPU.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from dnervcodec.denoise.noise import estimate_noise, estimate_sigma
from dnervcodec.video import write_bytes_atomic

from .denoise import load_clip, make_noisy

CLIPS = (("bunny", "160x320"), ("bikes", "136x320"), ("carphone", None))
NOISES = (("awgn", 15.0), ("awgn", 30.0), ("pg-weak", 0.0), ("pg-middle", 0.0), ("pg-strong", 0.0))


def measure(frames: int, seed: int = 0) -> list[dict]:
    rows = []
    for clip, resolution in CLIPS:
        clean, meta = load_clip(clip, resolution, 0, frames)
        for noise, sigma in NOISES:
            noisy, target, _ = make_noisy(clean, noise, sigma, seed)
            est = estimate_noise(noisy)
            label = noise if noise != "awgn" else f"awgn {sigma:g}"
            rows.append({"clip": f"{clip} {meta['resolution']}", "noise": label,
                         "target_sigma": round(target, 3),
                         "added_rms": round(float(np.sqrt(np.mean((noisy.astype(np.float64) - clean) ** 2))), 3),
                         "estimate_noise": {"sigma": round(est.sigma, 3), "gain": round(est.gain, 3),
                                            "read": round(est.read, 3), "bins": est.bins},
                         "estimate_sigma": round(estimate_sigma(noisy), 3)})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| clip | noise | sigma to tell | RMS added (clipped) | estimate_noise sigma (gain, read) | "
             "error | MAD estimate_sigma | error |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        e, t = r["estimate_noise"], r["target_sigma"]
        lines.append(f"| {r['clip']} | {r['noise']} | {t:.1f} | {r['added_rms']:.1f} | {e['sigma']:.1f} "
                     f"({e['gain']:.2f}, {e['read']:.1f}) | {100 * (e['sigma'] / t - 1):+.0f}% | "
                     f"{r['estimate_sigma']:.1f} | {100 * (r['estimate_sigma'] / t - 1):+.0f}% |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.denoise_noise", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="frames per clip (default 40)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    ap.add_argument("--out", help="write the rows to this JSON file")
    args = ap.parse_args(argv)
    rows = measure(args.frames, args.seed)
    print(table(rows))
    if args.out:
        write_bytes_atomic(Path(args.out), (json.dumps({"frames": args.frames, "seed": args.seed, "rows": rows},
                                                       indent=1) + "\n").encode())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
