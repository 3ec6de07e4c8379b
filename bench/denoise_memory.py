"""Peak memory of STBN's whole-clip inference at 1x and 4x the frames: chunked, it must not grow with the clip.

    python -m bench.denoise_memory --frames 40 --resolution 144x176 --out docs/data/denoise-stbn-memory.json

Each clip length runs in a fresh Python process (memory a process has freed stays resident, so a second
run in the same process would look free): it builds STBN's network at its defaults with untrained weights
(inference costs the same memory whatever the weights) and allocates a random clip and its flows. Then the
kernel's peak-RSS mark (VmHWM) is reset to the current RSS (/proc/self/clear_refs) and the inference runs;
reported is how far the peak rose, so the clip, its flows and torch itself are left out: what remains is
what the inference holds (the output and, per chunk, the features and states). (ru_maxrss would not do:
after fork and exec it starts from the parent's size.) Linux only. The control runs the
same clips unchunked (one chunk = the whole clip), which is what growing memory looks like.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from dnervcodec.video import parse_resolution, write_bytes_atomic


def probe(length: int, chunk: int, height: int, width: int, options: dict | None = None) -> int:
    """In this process: how far the peak RSS rises (bytes) during whole-clip inference on `length` frames."""
    import torch

    from dnervcodec.denoise.stbn import STBN
    from dnervcodec.progress import Progress

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = STBN(**{**(options or {}), "propagation": "sequence", "chunk": chunk})
    net = model.build()
    gen = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (length, 3, height, width), generator=gen, dtype=torch.uint8)
    flows = (torch.zeros(length, 2, height, width), torch.zeros(length, 2, height, width))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS
    before = _status("VmRSS")
    model._infer(net, clip, flows, 25 / 255, Progress(enabled=False))
    return _status("VmHWM") - before


def _status(field: str) -> int:
    """A size from /proc/self/status (VmRSS: resident now, VmHWM: peak since the last reset), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in /proc/self/status")


def measure(lengths: Sequence[int], chunk: int, height: int, width: int, options: dict | None = None) -> list[int]:
    """`probe` of each length, each in a fresh process: peak-RSS growth in bytes, in the order of `lengths`."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(root)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    growth = []
    for length in lengths:
        spec = json.dumps({"length": length, "chunk": chunk, "height": height, "width": width,
                           "options": options or {}})
        done = subprocess.run([sys.executable, "-m", "bench.denoise_memory", "--probe", spec], cwd=root, env=env,
                              capture_output=True, text=True, check=True)
        growth.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return growth


def table(doc: dict) -> str:
    n = doc["frames"]
    lines = [f"| inference | peak RSS growth, {n} frames | {4 * n} frames | ratio |", "| --- | ---: | ---: | ---: |"]
    for name, (one, four) in doc["growth_bytes"].items():
        lines.append(f"| {name} | {one / 2**20:.0f} MiB | {four / 2**20:.0f} MiB | {four / one:.2f}x |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.denoise_memory", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="1x clip length (default 40); 4x is also measured")
    ap.add_argument("--resolution", default="144x176", help="HEIGHTxWIDTH (default 144x176)")
    ap.add_argument("--chunk", type=int, default=None, help="frames per chunk (default: STBN's)")
    ap.add_argument("--out", help="write the numbers to this JSON file")
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.probe:  # the child process of `measure`
        spec = json.loads(args.probe)
        print(json.dumps(probe(spec["length"], spec["chunk"], spec["height"], spec["width"], spec["options"])))
        return 0
    from dnervcodec.denoise.stbn import STBN

    h, w = parse_resolution(args.resolution)
    chunk = args.chunk or STBN.chunk
    lengths = [args.frames, 4 * args.frames]
    doc = {"frames": args.frames, "resolution": f"{h}x{w}", "chunk": chunk, "options": "STBN defaults",
           "growth_bytes": {f"chunked ({chunk} frames)": measure(lengths, chunk, h, w),
                            "unchunked (control)": measure(lengths, 4 * args.frames, h, w)}}
    print(table(doc))
    if args.out:
        write_bytes_atomic(Path(args.out), (json.dumps(doc, indent=1) + "\n").encode())
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
