"""Plot training PSNR against epoch for one or more `dnerv fit` runs (their report.json files).

    python tools/plot_history.py runs/a/report.json runs/b/report.json --labels DNeRV no-diff -o history.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("reports", nargs="+", type=Path)
    p.add_argument("--labels", nargs="+")
    p.add_argument("--title", default="Training PSNR")
    p.add_argument("-o", "--output", required=True, type=Path)
    args = p.parse_args(argv)
    labels = args.labels or [r.parent.name for r in args.reports]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for path, label in zip(args.reports, labels):
        report = json.loads(path.read_text())
        epochs = [h["epoch"] for h in report["history"]]
        psnr = [h["psnr"] for h in report["history"]]
        ax.plot(epochs, psnr, label=f"{label}: {report['psnr']:.2f} dB final, {report['stored_values']} values")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training PSNR (dB, RGB)")
    ax.set_title(args.title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
