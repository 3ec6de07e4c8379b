"""Fit-stage ablations measured as PSNR against CPU time (issue 13, item 4: reach a PSNR in less CPU time).

    python -m bench.fit_ablation run --name enc64 --enc-width 64 --epochs 40 --out runs/fit-ablation
    python -m bench.fit_ablation report runs/fit-ablation --json docs/data/fit-ablation.json --plot docs/img/fit-ablation.png

`run` fits one variant (one process, one thread unless OMP_NUM_THREADS says otherwise) on a sample clip at
the model size the default encode would choose (plan_encode at --bpp and --value-bits) and writes its
per-epoch history with CPU seconds; `report` tabulates and plots every run in a folder. Run variants side
by side as separate processes: CPU seconds, not wall time, are the measure on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

from dnervcodec.codec import EncodeConfig, plan_encode
from dnervcodec.fit import FitConfig, fit
from dnervcodec.models.padding import pad_frames
from dnervcodec.video import parse_resolution, read_video


def cpu_seconds() -> float:
    """CPU time of this process (user + system), what a fit costs regardless of other jobs."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run(args: argparse.Namespace) -> dict:
    h, w = parse_resolution(args.resolution)
    video = read_video(args.clip, (h, w), 0, args.frames)
    t = video.frames.shape[0]
    plan = plan_encode(EncodeConfig(bpp=args.bpp, rd_epochs=1, value_bits=args.value_bits), t, h, w)
    model_cfg = replace(plan.sizing.config, enc_width=args.enc_width)
    fit_cfg = FitConfig(epochs=args.epochs, lr=args.lr, warmup=args.warmup, seed=args.seed)
    frames = pad_frames(video.frames, plan.coded)
    cpu0, wall0 = cpu_seconds(), time.time()
    result = fit(frames, model_cfg, fit_cfg, "cpu", progress=not args.quiet)
    cpu, wall = cpu_seconds() - cpu0, time.time() - wall0
    scale = cpu / max(result.history[-1]["seconds"], 1e-9)  # CPU seconds per wall second of the fit
    history = [{**h_, "cpu_seconds": h_["seconds"] * scale} for h_ in result.history]
    return {"name": args.name, "clip": args.clip, "resolution": [h, w], "frames": t, "bpp": args.bpp,
            "value_bits": args.value_bits, "enc_width": args.enc_width, "fit": fit_cfg.to_dict(),
            "model": model_cfg.to_dict(), "psnr": result.psnr, "cpu_seconds": cpu, "wall_seconds": wall,
            "history": history}


def report(folder: Path, json_out: Path | None, plot_out: Path | None) -> None:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    print("| variant | enc width | epochs | lr | PSNR (dB, float) | CPU min | wall min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in sorted(runs, key=lambda r: r["name"]):
        print(f"| {r['name']} | {r['enc_width']} | {r['fit']['epochs']} | {r['fit']['lr']:g} | {r['psnr']:.2f} | "
              f"{r['cpu_seconds'] / 60:.1f} | {r['wall_seconds'] / 60:.1f} |")
    if json_out is not None:
        json_out.write_text(json.dumps(runs, indent=1))
    if plot_out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in sorted(runs, key=lambda r: r["name"]):
            ax.plot([e["cpu_seconds"] / 60 for e in r["history"]], [e["psnr"] for e in r["history"]], label=r["name"])
        ax.set_xlabel("CPU minutes")
        ax.set_ylabel("training PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(plot_out, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fit_ablation", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--name", required=True)
    r.add_argument("--out", type=Path, default=Path("runs/fit-ablation"))
    r.add_argument("--clip", default="sample:bunny")
    r.add_argument("--resolution", default="160x320")
    r.add_argument("--frames", type=int, default=None)
    r.add_argument("--bpp", type=float, default=0.1)
    r.add_argument("--value-bits", type=float, default=6.0)
    r.add_argument("--enc-width", type=int, default=64)
    r.add_argument("--epochs", type=int, default=40)
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--warmup", type=float, default=0.2)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--quiet", action="store_true")
    q = sub.add_parser("report")
    q.add_argument("folder", type=Path)
    q.add_argument("--json", type=Path)
    q.add_argument("--plot", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "run":
        args.out.mkdir(parents=True, exist_ok=True)
        out = run(args)
        (args.out / f"{args.name}.json").write_text(json.dumps(out, indent=1))
        print(f"{args.name}: PSNR {out['psnr']:.2f} dB, {out['cpu_seconds'] / 60:.1f} CPU min", file=sys.stderr)
    else:
        report(args.folder, args.json, args.plot)


if __name__ == "__main__":
    main()
