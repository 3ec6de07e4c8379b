"""Denoise benchmark: one clip with synthetic noise; the noisy input, tuned non-local means, STBN at its
defaults and its ablations, and other learned denoisers (VDP) when they are available.

    python -m bench.denoise --clip bunny --resolution 160x320 --frames 40 --sigma 30 --seed 0 --out runs/denoise-bunny
    python -m bench.denoise --clip bikes --resolution 136x320 --frames 40 --sigma 30 --seed 0 --out runs/denoise-bikes
    python -m bench.denoise ... --rows noisy nlm stbn                   # a subset of the rows
    python -m bench.denoise ... --options stbn='{"iters": 200}'        # options for every stbn row
    python -m bench.denoise --clip carphone --frames 40 --noise pg-middle --blind --rows noisy nlm-transfer stbn vdp \
        --nlm-tune-clip bikes --nlm-tune-resolution 136x320 --out runs/denoise-carphone-pg-middle

Rows (`--rows`, default all of these): `noisy`; `nlm` (OpenCV's multi-frame non-local means,
temporal window 5, h = hColor tuned over `--nlm-strengths` against the clean clip, an advantage no other
row gets; its time is that of one strength); `stbn` at its defaults, given the true sigma; the ablations
`stbn-bilinear` (bilinear instead of nearest warping), `stbn-no-refine` (the second pass keeps the flow of
the noisy frames: same passes and steps, only the flow differs), `stbn-no-rfe` (plain residual blocks at
full resolution instead of the receptive-field expansion) and the other loss (`stbn-l2` or `stbn-nll`);
`stbn-sigma-est` (sigma not given: estimated); `stbn-seed1` (training seed 1 instead of --seed: how
much two runs of the same settings differ, the yardstick for the ablations); `vdp` and `vdp-single-scale`
(`pyramid_levels=1`). Not in the default list: `stbn-window` / `stbn-sequence` (windowed against whole-clip
propagation at inference), `stbn-sequence-no-burn-in`, `vdp-free` / `vdp-rollout` (VDP's two latent
dynamics) and `nlm-transfer` (h = strength x estimated sigma, the strength tuned on another clip given by
`--nlm-tune-clip` with the same noise, as a user without a clean reference would have to). A row
whose denoiser cannot be built (ConfigError, e.g. VDP not in this version) is reported as not available,
never filled in, and tried again on the next run. Any other registered denoiser name is a row too.

Noise (`--noise`): AWGN of `--sigma`, or Poisson-Gaussian at a named strength (pg-weak, pg-middle,
pg-strong; dnervcodec.denoise.noise), whose rows are given its effective sigma on the clean clip.
`--blind`: no row is given sigma; each estimates it (estimate_noise), and the estimate is in the meta.

Each row: PSNR (RGB, mean over frames) and MS-SSIM against the clean clip, wall and CPU seconds of the
denoiser alone, torch/OpenCV thread count (`--threads`, default 1) and the load average. Rows are saved to
`results.json` (bench/results.py's file, keyed by "row") as they are measured; rerunning the same command
skips them. `results.md` is the table. Denoised clips are cached losslessly as `<row>.npy` with a
`<row>.json` that says what made them; `denoised()` gives other benchmarks the same clips.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from dnervcodec.checkpoint import frames_digest
from dnervcodec.denoise.base import denoiser_names, get_denoiser
from dnervcodec.denoise.nlm import tune_strength
from dnervcodec.denoise.noise import POISSON_GAUSSIAN, add_awgn, estimate_noise, poisson_gaussian
from dnervcodec.errors import ConfigError, DnervError
from dnervcodec.metrics import ms_ssim, psnr
from dnervcodec.video import parse_resolution, read_video, resolve_input, write_bytes_atomic

from .results import ResultsFile

COLUMNS = ("row", "psnr-rgb", "ms-ssim-rgb", "wall_s", "cpu_s", "threads")
NOISES = ("awgn", *(f"pg-{name}" for name in POISSON_GAUSSIAN))  # pg-*: Poisson-Gaussian at a named strength
NLM_TRANSFER_STRENGTHS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)  # h per estimated sigma, tried on the tuning clip
NLM_STRENGTHS_PER_SIGMA = (0.4, 0.5, 0.6, 0.7, 0.8, 1.0)  # h = hColor, as multiples of sigma
NLM_FIXED = {"temporal_window": 5, "template_window": 7, "search_window": 21}


@dataclass(frozen=True)
class Row:
    """One line of the table: a denoiser (`method`) with options, and whether it is told sigma."""

    name: str
    method: str  # "noisy", "nlm" (tuned), "nlm-h<H>" (one strength), or a registered denoiser name
    options: dict = field(default_factory=dict)
    sigma_given: bool = True
    note: str = ""


def _stbn_other_loss() -> str:
    from dnervcodec.denoise.stbn import LOSSES, STBN

    return next(loss for loss in LOSSES if loss != STBN.loss)


ROWS = {
    "noisy": Row("noisy", "noisy", note="the noisy input"),
    "nlm": Row("nlm", "nlm", note="h = hColor tuned on the clean clip; time of one strength"),
    "stbn": Row("stbn", "stbn", note="defaults"),
    "stbn-bilinear": Row("stbn-bilinear", "stbn", {"warp_mode": "bilinear"}, note="bilinear warping"),
    "stbn-no-refine": Row("stbn-no-refine", "stbn", {"refine_flow": False},
                          note="second pass on the noisy-frame flow (same steps)"),
    "stbn-no-rfe": Row("stbn-no-rfe", "stbn", {"use_rfe": False}, note="no receptive-field expansion"),
    "stbn-l2": Row("stbn-l2", "stbn", {"loss": "l2"}, note="blind-spot L2 loss, blind-spot mean"),
    "stbn-nll": Row("stbn-nll", "stbn", {"loss": "nll"}, note="Gaussian NLL loss, posterior mean"),
    "stbn-sigma-est": Row("stbn-sigma-est", "stbn", sigma_given=False, note="sigma estimated, not given"),
    "stbn-seed1": Row("stbn-seed1", "stbn", {"seed": 1}, note="defaults, training seed 1: the run-to-run spread"),
    "stbn-window": Row("stbn-window", "stbn", {"propagation": "window"},
                       note="windowed inference: every clip_len-frame window, the centred one kept"),
    "stbn-sequence": Row("stbn-sequence", "stbn", {"propagation": "sequence"},
                         note="whole-clip propagation, both directions, chunked; burn-in training"),
    "stbn-sequence-no-burn-in": Row("stbn-sequence-no-burn-in", "stbn", {"propagation": "sequence", "burn_in": 0},
                                    note="whole-clip propagation, trained on windows alone"),
    "vdp": Row("vdp", "vdp", note="defaults"),
    "vdp-single-scale": Row("vdp-single-scale", "vdp", {"pyramid_levels": 1}, note="no spatial pyramid"),
    "vdp-free": Row("vdp-free", "vdp", {"dynamics": "free"}, note="a free latent per frame, predictor as a loss term"),
    "vdp-rollout": Row("vdp-rollout", "vdp", {"dynamics": "rollout"},
                       note="the paper's: only z_0 free, z_1.. rolled out by the predictor"),
    "nlm-transfer": Row("nlm-transfer", "nlm", sigma_given=False,
                        note="h = strength x estimated sigma, the strength tuned on another clip"),
}


def default_rows() -> list[str]:
    return ["noisy", "nlm", "stbn", "stbn-seed1", "stbn-bilinear", "stbn-no-refine", "stbn-no-rfe",
            f"stbn-{_stbn_other_loss()}", "stbn-sigma-est", "vdp", "vdp-single-scale"]


def get_row(name: str) -> Row:
    """A named row; `nlm-h<H>` is NLM at strength H; any other registered denoiser runs at its defaults."""
    if name in ROWS:
        return ROWS[name]
    if name.startswith("nlm-h"):
        try:
            h = float(name[5:])
        except ValueError:
            raise ConfigError(f"bad NLM row {name!r}; write nlm-h<strength>, e.g. nlm-h18") from None
        return Row(name, "nlm", {"h": h}, note=f"h = hColor = {h:g}")
    if name in denoiser_names():
        return Row(name, name)
    raise ConfigError(f"unknown row {name!r}; choose from {sorted(ROWS)}, nlm-h<H> or a denoiser in "
                      f"{denoiser_names()}")


def resolve_row(row: Row, blind: bool = False, nlm_transfer: dict | None = None) -> Row:
    """The row as this run measures it: blind (sigma estimated by every denoiser) and, for `nlm-transfer`,
    with the strength tuned on the other clip (`nlm_transfer["strength"]`)."""
    if blind and row.sigma_given:
        row = dataclasses.replace(row, sigma_given=False)
    if row.name == "nlm-transfer":
        if not nlm_transfer:
            raise ConfigError("row nlm-transfer needs an NLM strength tuned on another clip: give --nlm-tune-clip")
        row = dataclasses.replace(row, options={**row.options, "strength": nlm_transfer["strength"]})
    return row


def nlm_strengths(sigma: float) -> list[float]:
    return sorted({float(round(k * sigma)) for k in NLM_STRENGTHS_PER_SIGMA if round(k * sigma) >= 1})


def row_options(row: Row, options: dict | None = None) -> dict:
    """The options a row's denoiser is built with: the method's (`options[method]`), then the row's own.

    `stbn-no-refine` gets the second-pass steps the refining run would take with the same options, so
    the two differ only in the flow of that pass.
    """
    opts = {**(options or {}).get(row.method, {}), **row.options}
    if row.method == "stbn" and opts.get("refine_flow") is False and "refine_iters" not in (options or {}).get("stbn", {}):
        from dnervcodec.denoise.stbn import STBN

        passes = STBN(**{**opts, "refine_flow": True}).passes
        opts["refine_iters"] = passes[1] if len(passes) > 1 else 0
    return opts


def _build(row: Row, opts: dict, seed: int, device: str):
    if row.method == "nlm":
        return get_denoiser("nlm", **{**NLM_FIXED, **opts})
    if row.method in ("stbn", "vdp"):
        return get_denoiser(row.method, **{"seed": seed, "device": device, **opts})
    return get_denoiser(row.method, **opts)


def _config(den) -> dict:
    """Every setting of a built denoiser (its defaults included), so a change of defaults is a new run."""
    if hasattr(den, "options") and callable(den.options):
        return den.options()
    if dataclasses.is_dataclass(den):
        return {k: v for k, v in dataclasses.asdict(den).items() if not isinstance(v, (list, np.ndarray))}
    return {"class": type(den).__qualname__}


def _row_config(row: Row, options: dict | None, seed: int, device: str) -> dict | None:
    """A row's full settings as stored in results.json (None when its denoiser cannot be built)."""
    if row.method == "noisy":
        return {}
    try:
        return json.loads(json.dumps(_config(_build(row, row_options(row, options), seed, device)), default=str))
    except ConfigError:
        return None


def _cache_key(row: Row, config: dict, sigma: float, seed: int, noisy: np.ndarray) -> dict:
    return json.loads(json.dumps({"row": row.name, "method": row.method, "config": config,
                                  "sigma": sigma if row.sigma_given else None, "seed": seed,
                                  "noisy": frames_digest(noisy)}, default=str))


def _load_cached(out: Path, name: str, key: dict) -> tuple[np.ndarray, dict] | None:
    meta_path, clip_path = out / f"{name}.json", out / f"{name}.npy"
    if not (meta_path.exists() and clip_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        frames = np.load(clip_path, allow_pickle=False)
    except (OSError, ValueError):
        return None  # damaged: measure again
    if meta.get("key") != key:
        return None
    return frames, meta


def _save_cached(out: Path, name: str, key: dict, frames: np.ndarray, stats: dict) -> None:
    buf = io.BytesIO()
    np.save(buf, frames, allow_pickle=False)
    write_bytes_atomic(out / f"{name}.npy", buf.getvalue())  # the clip first: a sidecar means a whole clip
    write_bytes_atomic(out / f"{name}.json", (json.dumps({"key": key, **stats}, indent=1) + "\n").encode())


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def run_denoiser(row: Row, noisy: np.ndarray, sigma: float, seed: int, out_dir: str | os.PathLike,
                 options: dict | None = None, device: str = "auto", progress: bool = True) -> tuple[np.ndarray, dict]:
    """Row `row`'s denoised clip and its stats (seconds, cpu_s, threads, load, ...), from the cache or run."""
    out = Path(out_dir)
    opts = row_options(row, options)
    den = None if row.method == "noisy" else _build(row, opts, seed, device)  # ConfigError: not available
    key = _cache_key(row, {} if den is None else _config(den), sigma, seed, noisy)
    cached = _load_cached(out, row.name, key)
    if cached is not None:
        return cached[0], {**cached[1], "cached": True}
    if den is None:
        frames, stats = noisy, {"seconds": 0.0, "cpu_s": 0.0}
    else:
        load_start = os.getloadavg()
        c0, t0 = time.process_time(), time.perf_counter()
        frames = den.denoise(noisy, sigma if row.sigma_given else None, progress=progress)
        stats = {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                 "load_start": [round(v, 2) for v in load_start]}
        if getattr(den, "sigma_used", None) is not None:
            stats["sigma_used"] = den.sigma_used
    stats.update(threads=_threads(), load=[round(v, 2) for v in os.getloadavg()], device=device,
                 options=opts, measured=time.strftime("%Y-%m-%d %H:%M:%S"))
    _save_cached(out, row.name, key, frames, stats)
    return frames, {"key": key, **stats, "cached": False}


def denoised(name: str, noisy: np.ndarray, sigma: float, seed: int, out_dir: str | os.PathLike,
             options: dict | None = None, device: str = "auto", clean: np.ndarray | None = None,
             strengths: Sequence[float] | None = None, progress: bool = False) -> tuple[np.ndarray, float]:
    """(frames, seconds): the clip denoised by row `name`, cached losslessly in out_dir for reuse.

    A clip measured before with the same row, options, sigma, seed and noisy input is loaded instead of
    recomputed; `seconds` is then the time it took when it was made. `nlm` needs `clean` (it is tuned on
    it) and returns the best strength's clip and that one strength's time; `nlm-h<H>` is one strength.
    """
    if name == "nlm":
        if clean is None:
            raise ConfigError("the tuned nlm row needs the clean clip; ask for one strength instead, e.g. nlm-h18")
        best, _ = _tune_nlm(noisy, clean, sigma, seed, out_dir, strengths or nlm_strengths(sigma), device, progress)
        return best[0], best[1]["seconds"]
    frames, stats = run_denoiser(resolve_row(get_row(name)), noisy, sigma, seed, out_dir, options, device, progress)
    return frames, float(stats["seconds"])


def _tune_nlm(noisy, clean, sigma, seed, out_dir, strengths, device, progress):
    """Every strength's clip (cached as nlm-h<H>), the best one by PSNR, and PSNR per strength."""
    scores, results = {}, {}
    for h in strengths:
        frames, stats = run_denoiser(get_row(f"nlm-h{h:g}"), noisy, sigma, seed, out_dir, None, device, progress)
        scores[h], results[h] = psnr(frames, clean), (frames, stats)
    if not scores:
        raise ConfigError("NLM tuning needs at least one strength")
    best_h = max(scores, key=scores.__getitem__)
    return results[best_h], {"best_h": best_h, "scores": scores, "tuning_s": sum(r[1]["seconds"] for r in results.values())}


def make_noisy(clean: np.ndarray, noise: str, sigma: float, seed: int) -> tuple[np.ndarray, float, dict | None]:
    """(noisy clip, the sigma rows are given, the noise's description for the results' meta).

    "awgn": white Gaussian noise of std `sigma` (meta None: the files keep their AWGN form). "pg-<strength>":
    Poisson-Gaussian noise of that strength; rows that are given a sigma get its effective sigma on the clean
    clip (sqrt of the mean variance), `sigma` is not used.
    """
    if noise == "awgn":
        return add_awgn(clean, sigma, seed=seed), sigma, None
    if not noise.startswith("pg-"):
        raise ConfigError(f"unknown noise {noise!r}; choose one of {list(NOISES)}")
    model = poisson_gaussian(noise[3:])
    effective = round(model.effective_sigma(clean), 4)
    meta = {"kind": "poisson-gaussian", "strength": noise[3:], "gain": model.gain, "read": model.read,
            "effective_sigma": effective}
    return model.apply(clean, seed=seed), effective, meta


def noise_label(meta: dict) -> str:
    """The noise of a results file in words, for titles."""
    noise = meta.get("noise", "awgn")
    if noise == "awgn":
        return f"AWGN sigma {meta.get('sigma', 0):g}"
    return (f"Poisson-Gaussian {noise['strength']} (gain {noise['gain']:g}, read noise {noise['read']:g}; "
            f"effective sigma {noise['effective_sigma']:.1f})")


def tune_nlm_transfer(clean: np.ndarray, noise: str, sigma: float, seed: int, out_dir: str | os.PathLike,
                      clip_meta: dict, strengths: Sequence[float] | None = None) -> dict:
    """NLM's strength (h per estimated sigma) tuned on another clip with the same kind of noise, as a user
    with one clean reference clip would; cached in out_dir/nlm-transfer.json."""
    strengths = NLM_TRANSFER_STRENGTHS if strengths is None else strengths
    noisy, _, _ = make_noisy(clean, noise, sigma, seed)
    key = {"clip": clip_meta, "noise": noise, "sigma": sigma if noise == "awgn" else None, "seed": seed,
           "noisy": frames_digest(noisy), "strengths": [float(k) for k in strengths], "nlm": NLM_FIXED}
    path = Path(out_dir) / "nlm-transfer.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached["result"]
    except (OSError, ValueError):
        pass
    best, scores = tune_strength(noisy, clean, strengths, **NLM_FIXED)
    result = {"clip": clip_meta, "strength": best, "sigma_estimated": round(estimate_noise(noisy).sigma, 4),
              "psnr_by_strength": {f"{k:g}": round(v, 4) for k, v in scores.items()}}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps({"key": key, "result": result}, indent=1) + "\n").encode())
    return result


def _set_threads(threads: int) -> tuple[int, int]:
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    return before


def run_benchmark(clean: np.ndarray, noisy: np.ndarray, sigma: float, seed: int, out_dir: str | os.PathLike,
                  rows: Sequence[str] | None = None, options: dict | None = None, device: str = "auto",
                  threads: int = 1, strengths: Sequence[float] | None = None, clip_meta: dict | None = None,
                  progress: bool = True, noise: dict | None = None, blind: bool = False,
                  nlm_transfer: dict | None = None) -> dict:
    """Measure every row not yet in out_dir/results.json, then write results.md. Returns the results doc.

    `sigma` is the level rows are given (AWGN's sigma; for other noise its effective sigma on the clean
    clip), `noise` describes the noise when it is not AWGN; `blind` makes every row estimate sigma;
    `nlm_transfer` is the NLM strength tuned on another clip (`tune_nlm_transfer`), for row nlm-transfer.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows or default_rows())
    if len(set(rows)) != len(rows):
        raise ConfigError(f"row listed twice: {rows}")
    specs = [resolve_row(get_row(r), blind, nlm_transfer) for r in rows]
    strengths = [float(h) for h in (strengths or nlm_strengths(sigma))]
    meta = {"clip": {**(clip_meta or {}), "shape": list(clean.shape)}, "noise": noise or "awgn", "sigma": sigma,
            "seed": seed, "noisy": frames_digest(noisy), "nlm": {**NLM_FIXED, "strengths": strengths}}
    if blind:
        meta["blind"] = True
        meta["estimate"] = dataclasses.asdict(estimate_noise(noisy))
    if nlm_transfer:
        meta["nlm_transfer"] = nlm_transfer
    results = ResultsFile(out / "results.json", "denoise", "row", "Denoisers on one noisy clip (bench/denoise.py)",
                          meta, COLUMNS)
    before = _set_threads(threads)
    try:
        bar = tqdm(specs, desc="denoise", unit="row", disable=not progress, dynamic_ncols=True)
        for row in bar:
            bar.set_description(row.name)
            done = results.get(row.name)
            if done is not None and done.get("status") == "ok" and done.get("config") == _row_config(row, options,
                                                                                                   seed, device):
                continue
            point = _measure(row, clean, noisy, sigma, seed, out, options, device, strengths, progress)
            results.add(point)
            write_markdown(out / "results.md", results.doc(), rows)  # the table so far
            if point["status"] != "ok":
                tqdm.write(f"{row.name}: {point['status']} (skipped)")
            else:
                bar.set_postfix(psnr=f"{point['psnr-rgb']:.2f}")
        bar.close()
    finally:
        _set_threads_back(before)
    doc = results.doc()
    write_markdown(out / "results.md", doc, rows)
    return doc


def _set_threads_back(before: tuple[int, int]) -> None:
    import cv2
    import torch

    torch.set_num_threads(before[0])
    cv2.setNumThreads(before[1])


def _measure(row: Row, clean, noisy, sigma, seed, out, options, device, strengths, progress) -> dict:
    opts = row_options(row, options)
    point: dict = {"row": row.name, "method": row.method, "options": opts, "note": row.note}
    try:
        if row.method == "nlm" and row.name == "nlm":
            (frames, stats), tuning = _tune_nlm(noisy, clean, sigma, seed, out, strengths, device, progress)
            point.update(best_h=tuning["best_h"], tuning_s=tuning["tuning_s"],
                         psnr_by_h={f"{h:g}": round(v, 4) for h, v in tuning["scores"].items()})
        else:
            frames, stats = run_denoiser(row, noisy, sigma, seed, out, options, device, progress)
    except ConfigError as e:
        if row.method in ("noisy", "nlm", "stbn"):
            raise  # our own rows must run; only other denoisers may be missing from this version
        return {**point, "status": f"not available: {e}", "psnr-rgb": None, "ms-ssim-rgb": None}
    point.update({"config": stats["key"]["config"], "psnr-rgb": psnr(frames, clean), "ms-ssim-rgb": ms_ssim(frames, clean), "wall_s": stats["seconds"],
                  "cpu_s": stats.get("cpu_s"), "threads": stats["threads"], "load": stats.get("load"),
                  "device": stats.get("device"), "sigma_given": sigma if row.sigma_given else None,
                  "status": "ok", "clip_file": f"{stats['key']['row']}.npy"})
    if "sigma_used" in stats:
        point["sigma_used"] = stats["sigma_used"]
    if row.name == "nlm":  # the tuned row: the strengths are in the file's meta, the rest is NLM's defaults
        point["config"] = _row_config(row, options, seed, device)
    return point


def _cell(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def table(doc: dict, rows: Sequence[str] | None = None) -> str:
    """Markdown table of the rows (in `rows` order when given), with the PSNR difference to `stbn`."""
    from .results import to_points

    points = {p["row"]: p for p in to_points(doc)}
    order = [r for r in (rows or []) if r in points] + [r for r in points if r not in (rows or [])]
    ref = points.get("stbn", {}).get("psnr-rgb")
    lines = ["| row | PSNR (dB) | vs stbn | MS-SSIM | wall (s) | CPU (s) | threads | load 1/5 min | settings |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for name in order:
        p = points[name]
        if p.get("status") != "ok":
            lines.append(f"| {name} | {p.get('status', 'not measured')} | | | | | | | |")
            continue
        diff = "" if ref is None or name == "stbn" or name == "noisy" else f"{p['psnr-rgb'] - ref:+.2f}"
        load = p.get("load") or []
        load_s = "/".join(f"{v:.1f}" for v in load[:2])
        settings = p.get("note") or ""
        if p.get("options", {}).get("strength") is not None and p.get("method") == "nlm":
            settings += f" ({p['options']['strength']:g})"
        if p.get("best_h") is not None:
            scores = ", ".join(f"{h}: {v:.2f}" for h, v in (p.get("psnr_by_h") or {}).items())
            settings = f"best h {p['best_h']:g} of {{{scores}}}; tuning took {p.get('tuning_s', 0):.0f} s"
        lines.append(f"| {name} | {p['psnr-rgb']:.2f} | {diff} | {_cell(p.get('ms-ssim-rgb'), '.4f')} | "
                     f"{_cell(p.get('wall_s'), '.1f')} | {_cell(p.get('cpu_s'), '.1f')} | {p.get('threads', '–')} | "
                     f"{load_s} | {settings} |")
    return "\n".join(lines)


def write_markdown(path: str | os.PathLike, doc: dict, rows: Sequence[str] | None = None) -> Path:
    meta = doc.get("meta", {})
    clip = meta.get("clip", {})
    title = (f"# Denoising: {clip.get('clip', 'clip')} {clip.get('resolution', '')}, {clip.get('frames', '?')} frames, "
             f"{noise_label(meta)} (seed {meta.get('seed')})"
             + (", sigma estimated by every row" if meta.get("blind") else ""))
    text = "\n".join([title, "", table(doc, rows), "",
                      "PSNR: RGB, per frame, mean over frames, against the clean clip. wall/CPU: the denoiser "
                      "alone (CPU time counts every thread of the process). load: the machine's load average "
                      "when the row finished.", ""])
    path = Path(path)
    write_bytes_atomic(path, text.encode())
    return path


def parse_options(items: Sequence[str]) -> dict:
    options: dict = {}
    for item in items:
        method, sep, text = item.partition("=")
        try:
            value = json.loads(text) if sep else None
        except json.JSONDecodeError as e:
            raise ConfigError(f"--options {item!r}: not JSON ({e})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"--options {item!r}: write METHOD='{{\"key\": value}}', e.g. stbn='{{\"iters\": 200}}'")
        options.setdefault(method, {}).update(value)
    return options


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.denoise", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True, help="sample name (bunny, bikes, carphone) or a video path")
    ap.add_argument("--resolution", help="HEIGHTxWIDTH after centre crop + area resize, e.g. 160x320")
    ap.add_argument("--start", type=int, default=0, help="first frame (default 0)")
    ap.add_argument("--frames", type=int, help="number of frames (default: all)")
    ap.add_argument("--sigma", type=float, default=30.0, help="AWGN std on 0-255 (default 30)")
    ap.add_argument("--noise", choices=NOISES, default="awgn",
                    help="awgn (with --sigma) or Poisson-Gaussian at a named strength (default awgn)")
    ap.add_argument("--blind", action="store_true", help="every row estimates sigma (none is given it)")
    ap.add_argument("--nlm-tune-clip", help="clip on which row nlm-transfer's strength is tuned (same noise)")
    ap.add_argument("--nlm-tune-resolution", help="HEIGHTxWIDTH of the tuning clip")
    ap.add_argument("--nlm-tune-start", type=int, default=0, help="first frame of the tuning clip (default 0)")
    ap.add_argument("--nlm-tune-frames", type=int, help="frames of the tuning clip (default: --frames)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise and of the learned denoisers")
    ap.add_argument("--rows", nargs="+", help=f"rows to measure (default: {' '.join(default_rows())})")
    ap.add_argument("--options", action="append", default=[], metavar="METHOD=JSON",
                    help="options for every row of a method, e.g. stbn='{\"iters\": 200}'; repeatable")
    ap.add_argument("--nlm-strengths", nargs="+", type=float, help="NLM h values to tune over (default: "
                    f"{', '.join(f'{k:g}' for k in NLM_STRENGTHS_PER_SIGMA)} x sigma)")
    ap.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (learned denoisers)")
    ap.add_argument("--out", required=True, help="output folder (reused to resume)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap.parse_args(argv)


def load_clip(clip: str, resolution: str | None, start: int, frames: int | None) -> tuple[np.ndarray, dict]:
    """(clean frames, their description for the results' meta) of a sample name or video path."""
    res = parse_resolution(resolution) if resolution else None
    clean = read_video(resolve_input(clip), resolution=res, start=start, num_frames=frames).frames
    t, h, w = clean.shape[:3]
    return clean, {"clip": str(clip), "resolution": f"{h}x{w}", "start": start, "frames": t}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        if args.threads < 1:
            raise ConfigError("--threads must be >= 1")
        options = parse_options(args.options)
        clean, clip_meta = load_clip(args.clip, args.resolution, args.start, args.frames)
        noisy, sigma, noise = make_noisy(clean, args.noise, args.sigma, args.seed)
        transfer = None
        if args.nlm_tune_clip:
            tune, tune_meta = load_clip(args.nlm_tune_clip, args.nlm_tune_resolution, args.nlm_tune_start,
                                        args.nlm_tune_frames or args.frames)
            transfer = tune_nlm_transfer(tune, args.noise, args.sigma, args.seed, args.out, tune_meta)
        t, h, w = clean.shape[:3]
        label = noise_label({"noise": noise or "awgn", "sigma": sigma})
        print(f"clip {args.clip}: {t} frames of {h}x{w}, {label} (seed {args.seed}); "
              f"{args.threads} thread(s), {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        run_benchmark(clean, noisy, sigma, args.seed, args.out, args.rows, options, args.device, args.threads,
                      args.nlm_strengths, clip_meta, progress=not args.no_progress, noise=noise, blind=args.blind,
                      nlm_transfer=transfer)
    except DnervError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
