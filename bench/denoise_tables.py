"""The measured tables of docs/denoise.md, one command each.

    python -m bench.denoise_tables rollout --out runs/denoise-tables      # VDP: rollout vs free dynamics
    python -m bench.denoise_tables propagation --out runs/denoise-tables  # STBN: windowed vs whole-clip
    python -m bench.denoise_tables pyramid --out runs/denoise-tables      # VDP: pyramid loss, 3 seeds
    python -m bench.denoise_tables poisson --out runs/denoise-tables      # Poisson-Gaussian, sigma estimated

A table is a few bench.denoise runs (a clip, a noise, a seed and rows each) in OUT/<table>/<run>/, so it
resumes like bench.denoise: rows already measured with the same settings are not run again. Then the
table is printed and written, with every run's results document, to docs/data/denoise-<table>.json and
.md (`--data DIR` elsewhere). `--options`/`--frames` change the settings (a smoke run): their files then go
to OUT/<table>/ unless --data is given, so that docs/data only ever holds the full settings' numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from dnervcodec.errors import DnervError
from dnervcodec.video import write_bytes_atomic

from . import denoise as bench
from .results import to_points


@dataclass(frozen=True)
class Run:
    """One bench.denoise run of a table."""

    name: str
    clip: str
    resolution: str | None
    rows: tuple[str, ...]
    frames: int = 40
    start: int = 0
    noise: str = "awgn"
    sigma: float = 30.0
    seed: int = 0
    blind: bool = False
    nlm_tune: tuple[str, str | None] | None = None  # (clip, resolution) that nlm-transfer's strength is tuned on


BUNNY, BIKES = ("bunny", "160x320"), ("bikes", "136x320")
STRENGTHS = ("weak", "middle", "strong")

RUNS: dict[str, list[Run]] = {
    "rollout": [Run(f"{clip}-s30", clip, res, ("noisy", "vdp-free", "vdp-rollout")) for clip, res in (BUNNY, BIKES)],
    "propagation": [Run(f"{clip}-s30", clip, res, ("noisy", "stbn-window", "stbn-sequence"))
                    for clip, res in (BUNNY, BIKES)],
    "pyramid": [Run(f"bunny-s30-seed{seed}", *BUNNY, ("noisy", "vdp", "vdp-single-scale"), seed=seed)
                for seed in (0, 1, 2)],
    "poisson": [Run(f"carphone-pg-{strength}", "carphone", None, ("noisy", "nlm", "nlm-transfer", "stbn", "vdp"),
                    noise=f"pg-{strength}", blind=True, nlm_tune=BIKES) for strength in STRENGTHS],
}

DESCRIPTION = {
    "rollout": "VDP's latent dynamics: rollout (the paper's) against free per-frame latents, same steps",
    "propagation": "STBN inference: clip_len-frame windows against whole-clip propagation (chunked)",
    "pyramid": "VDP's spatial pyramid loss against single-scale MSE, seeds 0-2 (noise and training)",
    "poisson": "Poisson-Gaussian noise at three strengths, sigma estimated by every denoiser; "
               "NLM's strength tuned on bikes (nlm-transfer) and, as an oracle, on the clip itself (nlm)",
}


def measure(table: str, out: Path, options: dict, frames: int | None, device: str, progress: bool) -> dict:
    """Run (or resume) every run of a table; {run name: its results document}."""
    docs = {}
    for run in RUNS[table]:
        clean, clip_meta = bench.load_clip(run.clip, run.resolution, run.start, frames or run.frames)
        noisy, sigma, noise = bench.make_noisy(clean, run.noise, run.sigma, run.seed)
        folder = out / table / run.name
        transfer = None
        if run.nlm_tune is not None:
            tune, tune_meta = bench.load_clip(run.nlm_tune[0], run.nlm_tune[1], 0, frames or run.frames)
            transfer = bench.tune_nlm_transfer(tune, run.noise, run.sigma, run.seed, folder, tune_meta)
        print(f"{table}/{run.name}: {clip_meta['frames']} frames of {clip_meta['resolution']}, "
              f"{bench.noise_label({'noise': noise or 'awgn', 'sigma': sigma})}", flush=True)
        docs[run.name] = bench.run_benchmark(clean, noisy, sigma, run.seed, folder, list(run.rows), options, device,
                                             1, None, clip_meta, progress=progress, noise=noise, blind=run.blind,
                                             nlm_transfer=transfer)
    return docs


def _points(doc: dict) -> dict[str, dict]:
    return {p["row"]: p for p in to_points(doc) if p.get("status") == "ok"}


def _db(p: dict | None) -> str:
    return "not yet measured" if p is None else f"{p['psnr-rgb']:.2f}"


def _minutes(p: dict | None) -> str:
    return "" if p is None or p.get("cpu_s") is None else f"{p['cpu_s'] / 60:.1f}"


def _diff(a: dict | None, b: dict | None) -> str:
    return "" if a is None or b is None else f"{a['psnr-rgb'] - b['psnr-rgb']:+.2f}"


def _mean_spread(values: Sequence[float]) -> str:
    """mean +- sample standard deviation (n - 1), the spread docs/denoise.md reports."""
    if not values:
        return "not yet measured"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} +- {spread:.2f} (n={len(values)})"


def _pair_table(docs: dict, rows: tuple[str, str], labels: tuple[str, str], diff: str) -> str:
    """One line per clip: the noisy input, two denoiser rows side by side (PSNR / MS-SSIM / CPU min), and the
    second's PSNR minus the first's."""
    lines = [f"| clip | noisy | {labels[0]} (PSNR / MS-SSIM / CPU min) | {labels[1]} (PSNR / MS-SSIM / CPU min) | "
             f"{diff} |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, doc in docs.items():
        p = _points(doc)
        cells = [f"{_db(p.get(r))} / {p[r]['ms-ssim-rgb']:.4f} / {_minutes(p[r])}" if r in p else "not yet measured"
                 for r in rows]
        lines.append(f"| {name} | {_db(p.get('noisy'))} | {cells[0]} | {cells[1]} | "
                     f"{_diff(p.get(rows[1]), p.get(rows[0]))} |")
    return "\n".join(lines)


def rollout_table(docs: dict) -> str:
    return _pair_table(docs, ("vdp-free", "vdp-rollout"), ("free", "rollout"), "rollout - free")


def propagation_table(docs: dict) -> str:
    return _pair_table(docs, ("stbn-window", "stbn-sequence"), ("windowed", "whole clip"), "whole - windowed")


def pyramid_table(docs: dict) -> str:
    seeds = list(docs)
    lines = ["| loss | " + " | ".join(seeds) + " | mean +- spread |", "| --- |" + " ---: |" * (len(seeds) + 1)]
    pts = [_points(doc) for doc in docs.values()]
    for label, row in (("noisy input", "noisy"), ("spatial pyramid (default)", "vdp"),
                       ("single scale", "vdp-single-scale")):
        values = [p[row]["psnr-rgb"] for p in pts if row in p]
        lines.append(f"| {label} | " + " | ".join(_db(p.get(row)) for p in pts) + f" | {_mean_spread(values)} |")
    paired = [p["vdp"]["psnr-rgb"] - p["vdp-single-scale"]["psnr-rgb"] for p in pts
              if "vdp" in p and "vdp-single-scale" in p]
    lines.append("| pyramid - single (paired) | " + " | ".join(_diff(p.get("vdp"), p.get("vdp-single-scale")) or "–"
                                                      for p in pts) + f" | {_mean_spread(paired)} |")
    return "\n".join(lines)


def poisson_table(docs: dict) -> str:
    lines = ["| strength | effective sigma | estimated sigma | noisy | NLM, oracle h | NLM, strength from bikes | "
             "STBN | VDP | STBN - NLM (bikes) | VDP - NLM (bikes) | CPU min STBN / VDP |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, doc in docs.items():
        meta, p = doc.get("meta", {}), _points(doc)
        transfer = meta.get("nlm_transfer") or {}
        strength = f" (k {transfer['strength']:g})" if "strength" in transfer else ""
        estimated = meta.get("estimate", {}).get("sigma", float("nan"))
        lines.append(
            f"| {meta.get('noise', {}).get('strength', name)} | {meta.get('sigma', 0):.1f} | {estimated:.1f} | "
            f"{_db(p.get('noisy'))} | {_db(p.get('nlm'))} | "
            f"{_db(p.get('nlm-transfer'))}{strength} | {_db(p.get('stbn'))} | {_db(p.get('vdp'))} | "
            f"{_diff(p.get('stbn'), p.get('nlm-transfer'))} | {_diff(p.get('vdp'), p.get('nlm-transfer'))} | "
            f"{_minutes(p.get('stbn'))} / {_minutes(p.get('vdp'))} |")
    return "\n".join(lines)


TABLES: dict[str, Callable[[dict], str]] = {"rollout": rollout_table, "propagation": propagation_table,
                                            "pyramid": pyramid_table, "poisson": poisson_table}


def write(table: str, docs: dict, data: Path, command: str) -> tuple[Path, str]:
    """docs/data/denoise-<table>.json (every run's results and the command) and .md (the table)."""
    text = TABLES[table](docs)
    data.mkdir(parents=True, exist_ok=True)
    raw = {"table": table, "description": DESCRIPTION[table], "command": command, "runs": docs}
    write_bytes_atomic(data / f"denoise-{table}.json", (json.dumps(raw, indent=1) + "\n").encode())
    md = f"# {DESCRIPTION[table]}\n\n`{command}`\n\n{text}\n"
    write_bytes_atomic(data / f"denoise-{table}.md", md.encode())
    return data / f"denoise-{table}.json", text


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.denoise_tables", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("table", choices=list(RUNS), help="which table")
    ap.add_argument("--out", default="runs/denoise-tables", help="folder of the runs (reused to resume)")
    ap.add_argument("--data", help="folder of the table's JSON and markdown (default docs/data; with "
                                   "--options/--frames: OUT/TABLE)")
    ap.add_argument("--options", action="append", default=[], metavar="METHOD=JSON",
                    help="options for every row of a method, as in bench.denoise (a smoke run)")
    ap.add_argument("--frames", type=int, help="frames per clip instead of the table's 40 (a smoke run)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    smoke = bool(args.options or args.frames)
    data = Path(args.data) if args.data else (out / args.table if smoke else Path("docs/data"))
    command = "python -m bench.denoise_tables " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        docs = measure(args.table, out, bench.parse_options(args.options), args.frames, args.device,
                       not args.no_progress)
    except DnervError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path, text = write(args.table, docs, data, command)
    print(text)
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
