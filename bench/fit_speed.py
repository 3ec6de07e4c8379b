"""Fitting speed and memory: training frames/s and achieved GFLOP/s next to this machine's fp32 matmul peak.

    python -m bench.fit_speed                       # 320x640 and 160x320, DNeRV at 0.1 bpp, plus peak RSS
    python -m bench.fit_speed --resolution 320x640 --size 1.5M --repeats 5

Both the matmul peak and the training steps are measured in the same run with the same thread count, and
each is the median of several repeats. FLOPs are counted by torch's FlopCounterMode over one real training
step (forward + backward of every conv and matmul), not estimated. Peak RSS comes from a real
`dnerv fit` of all 132 Bunny frames in a child process (decode, crop, resize and one epoch of fitting).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from dnervcodec.fit import FitConfig, reconstruction_loss
from dnervcodec.models.dnerv import DNeRV, decoder_params
from dnervcodec.models.sizing import budget_from_bpp, parse_budget, size_model
from dnervcodec.video import parse_resolution


def matmul_peak_gflops(n: int = 2048, repeats: int = 7) -> float:
    """Median fp32 GFLOP/s of an n x n matmul: the ceiling a conv-heavy fit can approach."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e9


def training_step_speed(height: int, width: int, budget: int, frames: int, batch: int, steps: int, repeats: int,
                        use_diff: bool = True) -> dict:
    """Time real training steps (forward, loss, backward, Adam) on random frames of the given size."""
    sizing = size_model(height, width, frames, budget, use_diff)
    torch.manual_seed(0)
    model = DNeRV(sizing.config).to(memory_format=torch.channels_last)
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    cl = torch.channels_last
    x = torch.rand(batch, 3, height, width).contiguous(memory_format=cl)
    d = (torch.rand(batch, 6, height, width) - 0.5).contiguous(memory_format=cl) if use_diff else None

    def step() -> None:
        loss = reconstruction_loss(FitConfig().loss, model(x, d), x)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(3):
        step()
    per_step = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            step()
        per_step.append((time.perf_counter() - t) / steps)
    sec = statistics.median(per_step)
    return {
        "resolution": f"{height}x{width}",
        "budget": budget,
        "decoder_params": decoder_params(sizing.config.decoder),
        "model_params": sum(p.numel() for p in model.parameters()),
        "batch": batch,
        "gflop_per_frame": flops / batch / 1e9,
        "frames_per_s": batch / sec,
        "gflops": flops / sec / 1e9,
    }


def fit_peak_rss_gib(resolution: str, size: str | None, epochs: int = 1) -> tuple[float, float]:
    """Peak RSS (GiB) and wall time of a real `dnerv fit` of all 132 Bunny frames, in a child process."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "dnervcodec.cli", "fit", "sample:bunny", "--resolution", resolution,
               "--epochs", str(epochs), "--quiet", "-o", str(Path(tmp) / "run")]
        if size:
            cmd += ["--size", size]
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", action="append", help="HxW, repeatable (default 320x640 and 160x320)")
    p.add_argument("--size", help="budget in stored values (default: 0.1 bpp for 132 frames)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=10, help="training steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS fit of all 132 Bunny frames")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    resolutions = args.resolution or ["320x640", "160x320"]
    peak = matmul_peak_gflops()
    print(f"threads {torch.get_num_threads()}, fp32 matmul peak (2048^3, median of 7): {peak:.1f} GFLOP/s")
    rows = []
    for res in resolutions:
        h, w = parse_resolution(res)
        budget = parse_budget(args.size) if args.size else budget_from_bpp(0.1, 132, h, w)
        for use_diff in (True, False):
            r = training_step_speed(h, w, budget, 132, args.batch, args.steps, args.repeats, use_diff)
            r["model"] = "dnerv" if use_diff else "no-diff"
            r["fraction_of_peak"] = r["gflops"] / peak
            rows.append(r)
            print(f"{res} {r['model']:>7} budget {budget}: {r['frames_per_s']:.1f} frames/s, "
                  f"{r['gflop_per_frame']:.2f} GFLOP/frame, {r['gflops']:.1f} GFLOP/s = {r['fraction_of_peak']:.2f} of peak")
    out = {"matmul_peak_gflops": peak, "threads": torch.get_num_threads(), "rows": rows}
    if not args.no_rss:
        res = "320x640"
        rss, wall = fit_peak_rss_gib(res, args.size)
        out["fit_peak_rss_gib"] = {"resolution": res, "frames": 132, "gib": rss, "wall_s": wall}
        print(f"peak RSS of `dnerv fit sample:bunny --resolution {res} --epochs 1` (132 frames): {rss:.2f} GiB, {wall:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
