"""Noisy sources: rate-distortion of denoise-then-encode chains, measured against the *clean* clip.

    python -m bench.noisy_rd --clip bunny --resolution 160x320 --sigma 30 --out runs/noisy-bunny-s30

A clean clip gets AWGN (sigma on 0-255, fixed seed). Each chain encodes the noisy clip, or the noisy clip
after one of our denoisers, at several rates; every point is a real encode and a real decode, and its PSNR
and MS-SSIM are taken against the clean clip. Chains (`--chains` picks some):

    x264-medium-420, x265-medium-420, x265-medium-444   the standard codecs on the noisy input
    nlm+x265-medium-444                                 OpenCV non-local means (h tuned on the clean clip), then x265
    stbn+x265-medium-444                                our STBN, then x265 (our denoisers serve any codec)
    dnerv, stbn+dnerv, vdp+dnerv                        DNeRV on the noisy input, after STBN, after VDP
    stbn+dnerv-6bit, vdp+dnerv-6bit, ...                the same at 6 bits + 30 QAT epochs (asked for by name)

Each denoiser runs once per clip and sigma; its output is cached losslessly (bench.denoise) and its time is
recorded with every point as `denoise_s`. BD metrics compare each chain with every other on *operational
fronts*: past some rate a codec spends its bits reproducing the noise and gets worse against the clean
clip, and nobody would pick those points (bench.bdrate.pareto_front). Plots show every point.
Outputs as bench.rd: one results JSON per chain, rd-psnr.png, rd-ms-ssim.png, results.md; rerunning the
same command resumes, also a DNeRV point whose fit was stopped (its checkpoints are in OUT/work until done).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np

from dnervcodec.denoise.noise import add_awgn
from dnervcodec.errors import ConfigError, DnervError, Interrupted
from dnervcodec.video import parse_resolution, read_video, resolve_input

from .denoise import denoised, parse_options
from .dnerv_point import dnerv_spec
from .rd import CodecSpec, baseline_spec, interrupted_message, run_benchmark

CHAINS = ("x264-medium-420", "x265-medium-420", "x265-medium-444", "nlm+x265-medium-444",
          "stbn+x265-medium-444", "dnerv", "stbn+dnerv", "vdp+dnerv")
# DNeRV at 6 bits with 30 epochs of quantization-aware fine-tuning: more parameters for the same bytes
# (at 85k values on clean Bunny, 25% fewer bytes for 0.09 dB). Run it with --chains; not a default chain.
LOW_BIT_DNERV = "dnerv-6bit"
TESTS = ("stbn+dnerv", "vdp+dnerv", "stbn+dnerv-6bit", "vdp+dnerv-6bit", "stbn+x265-medium-444",  # BD tables
         "dnerv", "dnerv-6bit")
# Measured on Bunny 160x320 (40 frames) at sigma 30, x265 4:4:4 against the clean clip: CRF 22 3.1 bpp 20.8 dB,
# 27 1.2 bpp 22.2 dB, 32 0.28 bpp 24.3 dB (the peak), 37 0.031 bpp 24.1 dB, 42 0.0095 bpp 22.3 dB, 47 0.007 bpp
# 21.3 dB. Below CRF 30 the bits reproduce the noise, so the sweep covers the front, 30 to 47.
NOISY_CRFS = (30, 32, 34, 36, 38, 40, 43, 47)
# bpp at 8 bits per stored value. The smallest model of all 132 Bunny frames at 160x320 stores 0.035 bpp; at 40
# frames it is 0.07 bpp, because the decoder is shared by fewer frames (measured at 40 frames: 0.07 0.1 0.15 0.25).
BUDGETS = (0.04, 0.05, 0.07)
EPOCHS = 300  # the DNeRV paper's; 26 min a point at 132 frames of 160x320, one job per core (150: 13-17 min)


def _chain_point(run, denoiser: str | None, clean: np.ndarray, sigma: float, seed: int, cache: Path,
                 options: dict | None, noisy: np.ndarray, fps: float, param: float) -> dict:
    """One point of a chain: (maybe) denoise the noisy clip, encode at `param`, measure against clean."""
    if denoiser is None:
        source, seconds = noisy, 0.0
    else:
        source, seconds = denoised(denoiser, noisy, sigma, seed, cache, options, clean=clean)
    point = run(source, fps, param, reference=clean)
    return {**point, "denoise_s": seconds}


def chain_spec(name: str, clean: np.ndarray, sigma: float, seed: int, cache: Path, crfs: Sequence[float],
               budgets: Sequence[float], epochs: int, denoise_options: dict | None = None,
               work_dir: Path | None = None) -> CodecSpec:
    """The CodecSpec of chain `name` ("[denoiser+]codec") on this clip: the codec's own spec, fed denoised frames.

    DNeRV points checkpoint under `work_dir`/`name`, so a stopped sweep resumes its unfinished point."""
    denoiser, _, codec = name.rpartition("+")
    point_dir = None if work_dir is None else work_dir / name
    if codec == "dnerv":
        spec = dnerv_spec(codec, epochs, budgets, work_dir=point_dir)
    elif codec == LOW_BIT_DNERV:
        spec = dnerv_spec(codec, epochs, budgets, bits=6, qat_epochs=30, work_dir=point_dir)
    else:
        spec = baseline_spec(codec, crfs)
    description = spec.description
    if denoiser:
        description = f"{denoiser} denoising (sigma {sigma:g} given), then {description}"
    point = partial(_chain_point, spec.run_point, denoiser or None, clean, sigma, seed, cache, denoise_options)
    meta = {**spec.meta, "denoiser": denoiser or None, "sigma": sigma, "noise_seed": seed,
            "denoise_options": (denoise_options or {}).get(denoiser, {})}
    return CodecSpec(name, spec.param, spec.params, point, f"Noisy input (AWGN sigma {sigma:g}): {description}", meta,
                     spec.seconds)  # the denoiser runs once per clip (cached): a point costs what its codec does


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.noisy_rd", description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="bunny", help="sample name (bunny, bikes, carphone) or a video path")
    ap.add_argument("--resolution", default="160x320", help="HEIGHTxWIDTH after centre crop + area resize")
    ap.add_argument("--frames", type=int, help="number of frames (default: all)")
    ap.add_argument("--sigma", type=float, default=30.0, help="AWGN sigma on 0-255 (default 30)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed, also the denoisers' and fits' seed")
    ap.add_argument("--chains", nargs="+", default=list(CHAINS), help=f"chains to run (default: {' '.join(CHAINS)})")
    ap.add_argument("--crfs", nargs="+", type=float, default=list(NOISY_CRFS), help="CRFs of the x264/x265 chains")
    ap.add_argument("--budgets", nargs="+", type=float, default=list(BUDGETS), help="DNeRV target bpp values")
    ap.add_argument("--dnerv-epochs", type=int, default=EPOCHS, help=f"fit epochs of each DNeRV point ({EPOCHS})")
    ap.add_argument("--denoise-cache", help="folder of cached denoised clips, e.g. a bench.denoise --out of the "
                    "same clip, sigma and seed (default: OUT/denoised)")
    ap.add_argument("--denoise-options", action="append", default=[], metavar="METHOD=JSON",
                    help="denoiser options as in bench.denoise, e.g. stbn='{\"iters\": 200}'; repeatable")
    ap.add_argument("--out", required=True, help="output folder (reused to resume)")
    ap.add_argument("--report-only", action="store_true",
                    help="measure nothing: redraw plots and results.md from the points already in OUT")
    ap.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    unknown = [c for c in args.chains if c.rpartition("+")[0] not in ("", "nlm", "stbn", "vdp")]
    if unknown:
        print(f"error: unknown denoiser in {unknown}; chains look like CODEC or DENOISER+CODEC", file=sys.stderr)
        return 2
    out = Path(args.out)
    cache = Path(args.denoise_cache) if args.denoise_cache else out / "denoised"
    crfs = [int(c) if float(c).is_integer() else c for c in args.crfs]
    try:
        options = parse_options(args.denoise_options)
        res = parse_resolution(args.resolution)
        video = read_video(resolve_input(args.clip), resolution=res, num_frames=args.frames)
        clean = video.frames
        noisy = add_awgn(clean, args.sigma, seed=args.seed)
        specs = [chain_spec(name, clean, args.sigma, args.seed, cache, crfs, args.budgets, args.dnerv_epochs,
                            options, work_dir=out / "work")
                 for name in args.chains]
        t, h, w = clean.shape[:3]
        meta = {"clip": args.clip, "resolution": f"{h}x{w}", "frames": t, "fps": video.fps, "sigma": args.sigma,
                "noise_seed": args.seed, "reference": "clean clip"}
        print(f"{args.clip}: {t} frames of {h}x{w}, AWGN sigma {args.sigma:g}; chains: {', '.join(args.chains)}")
        run_benchmark(noisy, video.fps, specs, out, meta, test=[n for n in TESTS if n in args.chains],
                      progress=not args.no_progress, pareto=True, measure=not args.report_only,
                      log_rate=True,  # rates span two decades: x265's cheapest points sit at 0.005 bpp
                      title=f"{Path(str(args.clip)).stem} {h}x{w}, {t} frames, AWGN sigma {args.sigma:g}: "
                            "quality against the clean clip")
    except (Interrupted, KeyboardInterrupt):
        print(interrupted_message(out), file=sys.stderr)
        return 130
    except (DnervError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'results.md'}, {out / 'rd-psnr.png'}, {out / 'rd-ms-ssim.png'} and one JSON per chain")
    return 0


if __name__ == "__main__":
    from bench.noisy_rd import main as _main

    raise SystemExit(_main())
