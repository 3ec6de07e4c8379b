"""VDP against tuned non-local means on one noisy clip: PSNR and wall time (the table of docs/vdp.md).

    python -m bench.vdp_vs_nlm --clip bunny --resolution 160x320 --frames 40 --sigma 30 --out runs/vdp-table
    python -m bench.vdp_vs_nlm --clip bikes --resolution 136x320 --frames 40 --sigma 30 --out runs/vdp-table

NLM gets its strength tuned on the clean clip (an advantage VDP does not get); VDP runs at its defaults
with sigma given and never sees the clean clip. Results go to OUT/CLIP.json; a rerun skips a method
already measured with the same settings.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from dnervcodec.denoise.nlm import tune_nlm
from dnervcodec.denoise.noise import add_awgn
from dnervcodec.denoise.vdp import VDP
from dnervcodec.metrics import psnr
from dnervcodec.video import parse_resolution, read_video, write_bytes_atomic


def measure_nlm(noisy: np.ndarray, clean: np.ndarray, strengths: list[float]) -> dict:
    t0 = time.perf_counter()
    best, scores = tune_nlm(noisy, clean, strengths)
    wall = time.perf_counter() - t0
    return {"psnr": round(scores[best], 4), "h": best, "scores": {str(k): round(v, 4) for k, v in scores.items()},
            "wall_s_per_strength": round(wall / len(strengths), 1)}


def measure_vdp(noisy: np.ndarray, clean: np.ndarray, sigma: float, seed: int) -> dict:
    model = VDP(seed=seed, device="cpu")
    t0 = time.perf_counter()
    out = model.denoise(noisy, sigma=sigma, progress=True)
    wall = time.perf_counter() - t0
    return {"psnr": round(psnr(out, clean), 4), "wall_s": round(wall, 1), "steps": len(model.history),
            "options": model.options(), "final_residual_rms": model.history[-1].get("residual")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clip", default="bunny", help="sample name (bunny, bikes, ...) or a video path")
    p.add_argument("--resolution", default="160x320")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--sigma", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0, help="noise seed and VDP seed")
    p.add_argument("--strengths", default="12,18,24,30", help="NLM h values to try")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    p.add_argument("--out", default="runs/vdp-table")
    args = p.parse_args(argv)

    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    source = args.clip if os.path.exists(args.clip) else f"sample:{args.clip}"
    clean = read_video(source, resolution=parse_resolution(args.resolution), num_frames=args.frames).frames
    noisy = add_awgn(clean, args.sigma, seed=args.seed)
    setting = {"clip": args.clip, "resolution": args.resolution, "frames": int(clean.shape[0]), "sigma": args.sigma,
               "seed": args.seed, "threads": args.threads}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{Path(args.clip).stem}.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    if doc.get("setting") != setting:
        doc = {"setting": setting}
    doc["noisy"] = {"psnr": round(psnr(noisy, clean), 4)}
    strengths = [float(s) for s in args.strengths.split(",")]
    jobs = {"nlm": lambda: measure_nlm(noisy, clean, strengths),
            "vdp": lambda: measure_vdp(noisy, clean, args.sigma, args.seed)}
    for name, job in jobs.items():
        if name in doc and (name != "vdp" or doc[name].get("options") == VDP(seed=args.seed).options()):
            continue
        doc[name] = {**job(), "load_avg_1min_at_end": round(os.getloadavg()[0], 2)}
        write_bytes_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
    print(f"{args.clip} {clean.shape[1]}x{clean.shape[2]}, {clean.shape[0]} frames, sigma {args.sigma:g}, "
          f"{args.threads} thread(s)")
    print(f"  noisy      {doc['noisy']['psnr']:6.2f} dB")
    print(f"  NLM h={doc['nlm']['h']:<4g} {doc['nlm']['psnr']:6.2f} dB  {doc['nlm']['wall_s_per_strength']:6.0f} s")
    print(f"  VDP        {doc['vdp']['psnr']:6.2f} dB  {doc['vdp']['wall_s']:6.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
