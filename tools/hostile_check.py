"""What the crafted files of issue 14 (tests/hostile.py) get: the decode cost the header claims, the
message, and the time, traced allocation and peak RSS growth of refusing them.

    python tools/hostile_check.py [--write DIR]   # --write also saves the crafted files there
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dnervcodec.codec import decode  # noqa: E402
from dnervcodec.errors import DnervError  # noqa: E402
from dnervcodec.models.cost import DecodeLimits, decode_cost  # noqa: E402
from tests.hostile import CRAFTED, craft  # noqa: E402
from tests.test_fuzz_fields import _peak_rss_reset, _rss  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python tools/hostile_check.py", description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, help="folder to save the crafted files in")
    args = ap.parse_args(argv)
    limits = DecodeLimits()
    print(f"default limits: {limits.max_gflops:,.0f} GFLOPs and {limits.max_memory_bytes / 2**30:g} GiB per frame")
    for name, cfg in CRAFTED.items():
        data = craft(cfg)
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            (args.write / f"{name}.dnerv").write_bytes(data)
        cost = decode_cost(cfg)
        rss = _peak_rss_reset()
        before = _rss("VmRSS") if rss else 0
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            decode(data)
            outcome = "DECODED"
        except DnervError as e:
            outcome = f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - t0
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        grown = f"{(_rss('VmHWM') - before) / 2**20:.1f} MiB" if rss else "not measured"
        print(f"{name}: {len(data):,} bytes; strides {list(cfg.strides)}, kernels {list(cfg.kernels)}, widths "
              f"{cfg.lift_width}->{list(cfg.widths)}, {cfg.height}x{cfg.width}; claims {cost.gflops:,.0f} GFLOPs and "
              f"{cost.peak_bytes / 2**30:,.1f} GiB of activations per frame")
        print(f"  decode: {outcome}")
        print(f"  refused in {seconds * 1e3:.1f} ms, largest traced allocation {traced / 1e3:.1f} kB, "
              f"peak RSS grew by {grown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
