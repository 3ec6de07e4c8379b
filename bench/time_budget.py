"""Does `dnerv encode --time T` end within T? Wall time and quality of real encodes against their budget.

    OMP_NUM_THREADS=1 python -m bench.time_budget --budgets 5m 10m 20m --json docs/data/time_budget.json
    python -m bench.time_budget --budgets 90s --clip sample:bikes --resolution 128x320

Each budget is one `dnerv encode CLIP --resolution HxW --time T` in a child process, timed from its start to
its exit as a user's `time` would. The encode keeps its checkpoints in a run folder (--run-dir), from which the
epochs each stage ran come, with each epoch's seconds and the plan after it; the file's size and decoded PSNR
come from the command's own summary line, the stage timings from the file. The
load average before and after each run is recorded too: on a shared machine the speed changes under the
encode, which is what its re-planning is for.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUMMARY = re.compile(r": (\d+) bytes, ([0-9.]+) bpp, PSNR ([0-9.]+) dB decoded")


def stage_history(run_dir: Path) -> dict[str, dict]:
    """What each training stage ran, from the checkpoints the encode left in its run folder: its epochs, the
    seconds each epoch took, and the plan after each epoch boundary (how the re-planning moved it)."""
    import torch

    found = {}
    for name, path in (("fit", run_dir / "checkpoint.pt"), ("prune", run_dir / "prune" / "checkpoint.pt"),
                       ("rd", run_dir / "rd" / "checkpoint.pt")):
        if path.is_file():
            history = torch.load(path, map_location="cpu", weights_only=True)["history"]
            ends = [h["seconds"] for h in history]
            found[name] = {"epochs": len(history), "seconds": ends[-1],
                           "epoch_s": [b - a for a, b in zip([0.0, *ends], ends)],
                           "planned": [h.get("planned") for h in history]}
    return found


def file_timings(path: Path) -> dict:
    """The stage timings the encoder wrote into the file (fit, rd, quantize_entropy_code, in seconds)."""
    from dnervcodec.codec import parse

    return json.loads(parse(path.read_bytes()).ancillary["timings"])


def run_budget(clip: str, resolution: str, budget: str, extra: list[str], work: Path) -> dict:
    """One timed encode: wall and CPU seconds, size, PSNR, the epochs planned and the plan it printed."""
    out, run_dir = work / f"time-{budget}.dnerv", work / f"time-{budget}.run"
    cmd = [sys.executable, "-m", "dnervcodec.cli", "encode", clip, "--resolution", resolution, "--time", budget,
           "-o", str(out), "--run-dir", str(run_dir), "--quiet", "-y", "--restart", *extra]
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"encode --time {budget} failed: {proc.stderr.strip().splitlines()[-1:]}")
    size, bpp, psnr = SUMMARY.search(proc.stdout).groups()
    from dnervcodec.options import parse_duration

    seconds = parse_duration(budget)
    return {
        "budget": budget, "budget_s": seconds, "wall_s": wall, "error": wall / seconds - 1,
        "cpu_s": (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime),
        "bytes": int(size), "bpp": float(bpp), "psnr": float(psnr), "stages": stage_history(run_dir),
        "timings": file_timings(out),
        "load_before": load_before, "load_after": os.getloadavg(),
        "command": " ".join(cmd[2:]), "stdout": proc.stdout.strip(),
        "notes": [line for line in proc.stderr.splitlines() if ": note: " in line],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="sample:bunny")
    p.add_argument("--resolution", default="160x320")
    p.add_argument("--budgets", nargs="+", default=["5m", "10m", "20m"], help="--time values, e.g. 5m 10m 20m")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--work", help="folder for the files and run folders (default: a temporary one)")
    args, extra = p.parse_known_args(argv)  # anything else goes to dnerv encode, e.g. --bpp 0.05
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for budget in args.budgets:
            r = run_budget(args.clip, args.resolution, budget, extra, work)
            rows.append(r)
            epochs = " + ".join(f"{st['epochs']} {k}" for k, st in r["stages"].items())
            print(f"--time {budget}: {r['wall_s']:.1f} s wall ({100 * r['error']:+.1f}%), {r['cpu_s']:.0f} CPU s, "
                  f"PSNR {r['psnr']:.2f} dB, {r['bpp']:.4f} bpp, epochs {epochs}, load {r['load_before'][0]:.1f} -> "
                  f"{r['load_after'][0]:.1f}", flush=True)
    doc = {"clip": args.clip, "resolution": args.resolution, "extra": extra,
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count(), "runs": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
