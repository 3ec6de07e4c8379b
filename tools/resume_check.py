"""Check that an interrupted and resumed fit ends where a straight fit ends (same seed, same settings).

    python tools/resume_check.py --epochs 30 --interrupt-after 60

Runs `dnerv fit` three times on Bunny at 160x320: once straight through; once sent Ctrl-C (SIGINT) after
--interrupt-after seconds; then the same command with --resume. Prints both final PSNRs and their gap.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def fit_cmd(run: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "dnervcodec.cli", "fit", args.clip, "--resolution", args.resolution,
            "--size", args.size, "--epochs", str(args.epochs), "--seed", "0", "--quiet", "-o", str(run)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clip", default="sample:bunny")
    p.add_argument("--resolution", default="160x320")
    p.add_argument("--size", default="85k")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--interrupt-after", type=float, default=60.0, help="seconds before Ctrl-C")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        straight, resumed = Path(tmp) / "straight", Path(tmp) / "resumed"
        subprocess.run(fit_cmd(straight, args), check=True, stdout=subprocess.DEVNULL)
        proc = subprocess.Popen(fit_cmd(resumed, args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(args.interrupt_after)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate()
        print(f"interrupted run: exit {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}")
        subprocess.run(fit_cmd(resumed, args) + ["--resume"], check=True, stdout=subprocess.DEVNULL)
        a = json.loads((straight / "report.json").read_text())["psnr"]
        b = json.loads((resumed / "report.json").read_text())["psnr"]
    print(f"straight {a:.4f} dB, interrupted + resumed {b:.4f} dB, gap {abs(a - b):.4f} dB")
    return 0 if abs(a - b) < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
