"""Run the structure-aware fuzz (tests/fuzz_fields.py) on a real .dnerv file and measure its worst cases.

    python tools/fuzz_check.py bunny.dnerv --scale 0.25 > docs/data/fuzz-check-bunny160.txt

Every family of the test suite's fuzz, with the given file as the base of all of them (and the file split into
two segments for the tiling family). Each case goes through the parser `decode` and `info` share; accepted
cases are also decoded (the first --frames frames, each distinct network once). Prints one line per family
(outcomes, seconds, slowest case, largest traced allocation) and the totals: the slowest case, the largest
traced (Python and numpy) allocation, and the growth of the process's peak RSS, which includes torch's.
Exit 1 if any case ends in anything but a decode or DnervError, or takes 1 s or more.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import tracemalloc
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dnervcodec.bitstream import read_container  # noqa: E402
from dnervcodec.codec import _run_segment, parse  # noqa: E402
from dnervcodec.errors import DnervError  # noqa: E402
from tests.fuzz_fields import PLAN, cases, two_segment_file  # noqa: E402
from tests.test_fuzz_fields import _network_key, _peak_rss_reset, _rss  # noqa: E402


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python tools/fuzz_check.py", description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every family's case count (test: 1.0)")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--frames", type=int, default=2, help="frames decoded for each accepted case's network")
    args = ap.parse_args(argv)
    data = args.file.read_bytes()
    files = {"file": data, "two segments": two_segment_file(data)}
    has_text = bool(read_container(data).ancillary)
    plan = [(family, "two segments" if family == "segments" else "file", n) for family, _, n in PLAN
            if family != "ancillary" or has_text]
    torch.set_num_threads(1)
    print(f"{args.file}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}; seed {args.seed}, "
          f"scale {args.scale}, torch {torch.__version__}, 1 thread")
    rss_tracked = _peak_rss_reset()
    rss_before = _rss("VmRSS") if rss_tracked else 0
    stats: dict[str, dict] = {}
    decoded: set[str] = set()
    failures = 0
    for family, what, damaged in cases(args.seed, args.scale, files, plan):
        s = stats.setdefault(family, {"ok": 0, "refused": 0, "seconds": 0.0, "slowest": (0.0, ""),
                                      "alloc": (0, "")})
        tracemalloc.start()
        t0 = time.perf_counter()
        try:
            info = parse(damaged)
            key = _network_key(info)
            if key not in decoded:
                for seg in info.segments:
                    _run_segment(seg, 0, min(seg.frames, args.frames), torch.device("cpu"), info.limits)
                decoded.add(key)
            s["ok"] += 1
        except DnervError:
            s["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - what this tool looks for
            print(f"FAIL: {family}: {what}: {type(exc).__name__}: {exc}")
            failures += 1
        finally:
            elapsed = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        s["seconds"] += elapsed
        s["slowest"] = max(s["slowest"], (elapsed, what))
        s["alloc"] = max(s["alloc"], (peak, what))
        failures += elapsed >= 1.0
    for family, s in stats.items():
        print(f"{family:<10} {s['ok']:>5} decoded {s['refused']:>5} refused  {s['seconds']:6.1f} s  slowest "
              f"{s['slowest'][0] * 1e3:6.1f} ms ({s['slowest'][1][:70]})  largest traced {s['alloc'][0] / 1e6:.2f} MB "
              f"({s['alloc'][1][:70]})")
    slowest = max(s["slowest"] for s in stats.values())
    alloc = max(s["alloc"] for s in stats.values())
    total = sum(s["ok"] + s["refused"] for s in stats.values())
    grown = f"{(_rss('VmHWM') - rss_before) / 2**20:.0f} MiB" if rss_tracked else "not measured"
    print(f"{total} cases, {len(decoded)} distinct networks decoded, {failures} failures; slowest "
          f"{slowest[0] * 1e3:.0f} ms ({slowest[1]}); largest traced allocation {alloc[0] / 1e6:.2f} MB = "
          f"{alloc[0] / len(data):.1f}x the file ({alloc[1]}); peak RSS grew by {grown}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
