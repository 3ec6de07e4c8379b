"""Damage a real .dnerv file in many ways and check every case ends cleanly, fast, and without a big allocation.

    python tools/corrupt_check.py bunny.dnerv --cases 2000

Uses the test suite's corruption generator (bit flips, truncations, bad lengths, huge re-CRC'd claims, versions,
repeated/reordered/unknown chunks, garbage): each case must parse and decode every tensor, or raise
BitstreamError, within 1 s. Prints the outcome counts, the slowest case and the peak traced allocation
relative to the file size.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_bitstream import corruptions, read_all  # noqa: E402

from dnervcodec.errors import BitstreamError  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python tools/corrupt_check.py", description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--cases", type=int, default=2000, help="how many corruptions to try (drawn at random)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    data = args.file.read_bytes()
    cases = corruptions(data, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    picked = [cases[i] for i in rng.choice(len(cases), min(args.cases, len(cases)), replace=False)]
    outcomes: dict[str, int] = {"BitstreamError": 0, "read fine": 0}
    slowest, peak, worst = 0.0, 0, ""
    for kind, damaged in picked:
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            read_all(damaged)
            outcomes["read fine"] += 1
        except BitstreamError:
            outcomes["BitstreamError"] += 1
        except Exception as exc:  # noqa: BLE001 - what this tool looks for
            print(f"FAIL: {kind} raised {type(exc).__name__}: {exc}")
            return 1
        finally:
            elapsed = time.perf_counter() - t0
            case_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        slowest = max(slowest, elapsed)
        if case_peak > peak:
            peak, worst = case_peak, f"{kind}, {len(damaged)} bytes"
    print(f"{len(picked)} corruptions of {args.file} ({len(data)} bytes): {outcomes}; slowest {slowest * 1e3:.0f} ms; "
          f"largest allocation {peak / 1e6:.2f} MB = {peak / len(data):.1f}x the intact file ({worst})")
    return 0 if slowest < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
