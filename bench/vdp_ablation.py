"""VDP ablation: the spatial pyramid loss against a plain single-scale loss, PSNR over iterations.

    python -m bench.vdp_ablation --clip bunny --resolution 160x320 --frames 40 --sigma 30 --out runs/vdp-ablation
    python -m bench.vdp_ablation --clip bikes --resolution 136x320 --iters 6000 --option ema=0 --out runs/long

Both fits see only the noisy clip; the clean clip is used by the `on_eval` hook alone, to draw the curve.
Writes OUT/curves.json (every variant's curve, wall time and options) and OUT/curves.png, and prints a
table. A variant already in curves.json with the same settings is not fitted again, so an interrupted
benchmark is rerun at the cost of the unfinished variant only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dnervcodec.denoise.noise import add_awgn  # noqa: E402
from dnervcodec.denoise.vdp import VDP  # noqa: E402
from dnervcodec.metrics import psnr  # noqa: E402
from dnervcodec.video import parse_resolution, read_video, write_bytes_atomic  # noqa: E402


def parse_option(text: str) -> tuple[str, object]:
    """'ema=0' -> ('ema', 0); values are read as JSON where they parse, else kept as strings."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--option takes KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def fit_curve(noisy: np.ndarray, clean: np.ndarray, sigma: float, options: dict, every: int) -> dict:
    """One VDP fit; PSNR of its current estimate against the clean clip every `every` iterations."""
    iters, values, seconds = [], [], []
    t0 = time.perf_counter()

    def on_eval(iteration: int, estimate: np.ndarray) -> None:
        iters.append(iteration)
        values.append(round(psnr(estimate, clean), 4))
        seconds.append(round(time.perf_counter() - t0, 1))
        print(f"  iter {iteration:5d}  {values[-1]:6.2f} dB  {seconds[-1]:7.0f} s", flush=True)

    model = VDP(**options, on_eval=on_eval, eval_every=every)
    out = model.denoise(noisy, sigma=sigma, progress=False)
    wall = time.perf_counter() - t0
    return {"options": options, "iters": iters, "psnr": values, "seconds": seconds,
            "final_psnr": round(psnr(out, clean), 4), "wall_s": round(wall, 1),
            "steps_run": len(model.history)}


def plot_curves(doc: dict, png: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, run in doc["variants"].items():
        ax.plot(run["iters"], run["psnr"], label=f"{name} (final {run['final_psnr']:.2f} dB)")
    ax.axhline(doc["noisy_psnr"], color="grey", ls=":", label=f"noisy input {doc['noisy_psnr']:.2f} dB")
    ax.set_xlabel("iteration")
    ax.set_ylabel("PSNR RGB [dB]")
    ax.set_title(f"VDP on {doc['clip']} {doc['resolution']}, {doc['frames']} frames, AWGN sigma {doc['sigma']:g}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def table(doc: dict) -> str:
    rows = ["| variant | best PSNR (iter) | final PSNR | wall time |", "| --- | ---: | ---: | ---: |"]
    for name, run in doc["variants"].items():
        best = int(np.argmax(run["psnr"])) if run["psnr"] else None
        peak = f"{run['psnr'][best]:.2f} dB ({run['iters'][best]})" if best is not None else "-"
        rows.append(f"| {name} | {peak} | {run['final_psnr']:.2f} dB | {run['wall_s']:.0f} s |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clip", default="bunny", help="sample name (bunny, bikes, ...) or a video path")
    p.add_argument("--resolution", default="160x320")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--sigma", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0, help="noise seed and VDP seed")
    p.add_argument("--iters", type=int, default=None, help="fitting steps (default: VDP's)")
    p.add_argument("--every", type=int, default=None, help="evaluate every N steps (default: iters / 30)")
    p.add_argument("--levels", type=int, default=None, help="pyramid levels of the pyramid variant (default: VDP's)")
    p.add_argument("--option", type=parse_option, action="append", default=[],
                   help="another VDP option for both variants, KEY=VALUE (repeatable), e.g. ema=0")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to other jobs)")
    p.add_argument("--out", default="runs/vdp-ablation")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    source = args.clip if os.path.exists(args.clip) else f"sample:{args.clip}"
    clean = read_video(source, resolution=parse_resolution(args.resolution), num_frames=args.frames).frames
    noisy = add_awgn(clean, args.sigma, seed=args.seed)
    defaults = VDP()
    iters = args.iters or defaults.iters
    levels = args.levels or defaults.pyramid_levels
    every = args.every or max(iters // 30, 1)
    common = {"iters": iters, "seed": args.seed, "device": "cpu", **dict(args.option)}
    variants = {f"pyramid loss ({levels} levels)": {**common, "pyramid_levels": levels},
                "single-scale loss": {**common, "pyramid_levels": 1}}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "curves.json"
    setting = {"clip": args.clip, "resolution": args.resolution, "frames": int(clean.shape[0]),
               "sigma": args.sigma, "seed": args.seed, "every": every, "threads": args.threads}
    doc = json.loads(path.read_text()) if path.exists() else {}
    if {k: doc.get(k) for k in setting} != setting:
        doc = {**setting, "variants": {}}
    doc["variants"] = {k: v for k, v in doc["variants"].items() if k in variants}
    doc["noisy_psnr"] = round(psnr(noisy, clean), 4)
    for name, options in variants.items():
        if doc["variants"].get(name, {}).get("options") == options:
            print(f"{name}: already measured in {path}")
            continue
        print(f"{name}: fitting {iters} steps", flush=True)
        doc["variants"][name] = fit_curve(noisy, clean, args.sigma, options, every)
        doc["load_avg_1min_at_end"] = os.getloadavg()[0]
        write_bytes_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
    plot_curves(doc, out / "curves.png")
    print(table(doc))
    print(f"wrote {path} and {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
