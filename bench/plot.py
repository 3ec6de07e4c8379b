"""Rate-distortion plots (PNG) and markdown tables from results files.

    python -m bench.plot out/*.json --out out/ --test x265-veryslow-444
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .bdrate import bd_psnr, bd_rate, common_range, ms_ssim_db, pareto_front  # noqa: E402
from .results import load_results, to_points  # noqa: E402

METRIC_LABELS = {"psnr-rgb": "PSNR RGB [dB]", "ms-ssim-rgb": "MS-SSIM RGB"}


def _docs(results: Iterable[dict | str | os.PathLike]) -> list[dict]:
    return [r if isinstance(r, dict) else load_results(r) for r in results]


def _curve(doc: dict, metric: str, pareto: bool = False) -> tuple[list[float], list[float]]:
    """(bpp, metric) sorted by bpp; with `pareto`, only the points no cheaper point beats (see pareto_front)."""
    pts = [p for p in to_points(doc) if p.get("bpp") is not None and p.get(metric) is not None]
    pts.sort(key=lambda p: p["bpp"])
    x, y = [p["bpp"] for p in pts], [p[metric] for p in pts]
    if pareto:
        keep = pareto_front(x, y)
        x, y = [x[i] for i in keep], [y[i] for i in keep]
    return x, y


def plot_rd(
    results: Sequence[dict | str | os.PathLike],
    out_png: str | os.PathLike,
    metric: str = "psnr-rgb",
    title: str | None = None,
    log_x: bool = False,
) -> Path:
    """One curve per results file: `metric` against bpp. Returns the PNG path."""
    docs = _docs(results)
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    try:
        for doc in docs:
            x, y = _curve(doc, metric)
            if x:
                ax.plot(x, y, marker="o", markersize=3.5, linewidth=1.4, label=doc["name"])
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        if log_x:
            ax.set_xscale("log")
        ax.grid(True, alpha=0.3)
        if title:
            ax.set_title(title, fontsize=10)
        if any(_curve(d, metric)[0] for d in docs):
            ax.legend(fontsize=8)
        fig.tight_layout()
        out_png = Path(out_png)
        out_png.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_png.with_name(f".{out_png.name}.part.png")
        fig.savefig(tmp)
        os.replace(tmp, out_png)
    finally:
        plt.close(fig)
    return out_png


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def points_table(doc: dict) -> str:
    """Markdown table of one codec's points."""
    param = doc.get("param")
    cols = ([param] if param else []) + ["bpp", "psnr-rgb", "ms-ssim-rgb", "encode_s", "decode_s"]
    specs = {"bpp": ".4f", "psnr-rgb": ".2f", "ms-ssim-rgb": ".4f", "encode_s": ".2f", "decode_s": ".3f"}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---:|" * len(cols)]
    for p in sorted(to_points(doc), key=lambda p: p["bpp"]):
        cells = []
        for c in cols:
            v = p.get(c)
            cells.append(_fmt(v, specs[c]) if c in specs else ("–" if v is None else f"{v:g}" if isinstance(v, float) else str(v)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bd_table(test: dict, anchors: Sequence[dict], pareto: bool = False) -> str:
    """Markdown table: BD-rate (PSNR and MS-SSIM) and BD-PSNR of `test` against each anchor.

    With `pareto`, every curve is reduced to its operational front first (see bdrate.pareto_front).
    """
    front = " (operational fronts: points that a cheaper point beats are left out)" if pareto else ""
    lines = [
        f"BD metrics of **{test['name']}** against each anchor (negative BD-rate = {test['name']} needs fewer "
        f"bits){front}:",
        "",
        "| anchor | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM | PSNR range of the BD-rate |",
        "|---|---:|---:|---:|---:|",
    ]
    tr, tp = _curve(test, "psnr-rgb", pareto)
    tr2, tm = _curve(test, "ms-ssim-rgb", pareto)
    notes = []
    for anchor in anchors:
        ar, ap = _curve(anchor, "psnr-rgb", pareto)
        ar2, am = _curve(anchor, "ms-ssim-rgb", pareto)
        cells = []
        for res, unit in (
            (bd_rate(ar, ap, tr, tp), "%"),
            (bd_psnr(ar, ap, tr, tp), " dB"),
            (bd_rate(ar2, ms_ssim_db(am), tr2, ms_ssim_db(tm)), "%"),
        ):
            if res.value is None:
                short = "no overlap" if res.reason and res.reason.startswith("no overlap") else "n/a"
                cells.append(short)
                notes.append(f"- {anchor['name']}: {res.reason}")
            else:
                cells.append(f"{res.value:+.1f}{unit}" if unit == "%" else f"{res.value:+.2f}{unit}")
        shared = common_range(ap, tp)
        cells.append("–" if shared is None else f"{shared[0]:.2f}-{shared[1]:.2f} dB")
        lines.append(f"| {anchor['name']} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", *dict.fromkeys(notes)]
    return "\n".join(lines)


def write_markdown(
    path: str | os.PathLike,
    results: Sequence[dict | str | os.PathLike],
    test: str | Sequence[str] | None = None,
    title: str = "Rate-distortion results",
    intro: str = "",
    pareto: bool = False,
) -> Path:
    """A markdown report: one points table per codec and, for each `test` name, its BD table vs the rest."""
    docs = _docs(results)
    parts = [f"# {title}", ""]
    if intro:
        parts += [intro, ""]
    for name in [test] if isinstance(test, str) else list(test or []):
        tests = [d for d in docs if d["name"] == name]
        parts += [f"## BD-rate of {name}", ""]
        if tests:
            parts += [bd_table(tests[0], [d for d in docs if d["name"] != name], pareto), ""]
        else:
            parts += [f"(no results for test codec '{name}')", ""]
    for doc in docs:
        parts += [f"## {doc['name']}", ""]
        if doc.get("description"):
            parts += [doc["description"], ""]
        parts += [points_table(doc), ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="results JSON files")
    ap.add_argument("--out", default=".", help="folder for rd-psnr.png, rd-ms-ssim.png and results.md")
    ap.add_argument("--test", help="name of the codec to compare against all others in the BD table")
    args = ap.parse_args(argv)
    docs = _docs(args.results)
    out = Path(args.out)
    plot_rd(docs, out / "rd-psnr.png", "psnr-rgb")
    plot_rd(docs, out / "rd-ms-ssim.png", "ms-ssim-rgb")
    write_markdown(out / "results.md", docs, test=args.test)
    print(f"wrote {out / 'rd-psnr.png'}, {out / 'rd-ms-ssim.png'}, {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
