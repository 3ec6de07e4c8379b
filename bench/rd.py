"""Rate-distortion benchmark: sweep each codec over its parameter, write results JSONs, plots and a table.

    python -m bench.rd --quick --out runs/rd-quick        # Bunny 160x320, 132 frames, 4 anchors, ~0.02-0.3 bpp
    python -m bench.rd --full --out runs/rd-full          # Bunny 640x1280, 6 anchors (slow: hours)
    python -m bench.rd --clip bikes --resolution 160x320 --frames 30 --anchors x265-medium-444 \
        --crfs 24 30 36 --out /tmp/rd

Outputs in --out: one `<codec>.json` per codec (CompressAI's results schema, see bench/results.py),
`rd-psnr.png`, `rd-ms-ssim.png` and `results.md` (points of every codec and the BD table of the test codec
against each anchor). Every point is saved as soon as it is measured; rerunning the same command skips the
points already in the files, so an interrupted run resumes where it stopped, and a DNeRV point stopped in
its fit continues from its checkpoint in OUT/work (removed once the point is measured). The time left
weighs each point by its estimated cost (CodecSpec.seconds): a DNeRV point takes minutes, a baseline seconds.

Codecs. A baseline is named CODEC-PRESET-CHROMA (x264-medium-420, x265-veryslow-444, ...; see
bench/baselines.py) and swept over CRF. Any other codec, e.g. ours, joins through the registry:

    from bench.rd import CodecSpec, register_codec
    register_codec(CodecSpec(
        name="dnerv", param="bpp_target", params=(0.02, 0.05, 0.1, 0.2),
        run_point=lambda frames, fps, p: {...},   # must return at least bpp, psnr-rgb, ms-ssim-rgb,
        description="DNeRV ...", meta={...}))     #   encode_s, decode_s (param is added if missing)

and is then used as `--test dnerv` (or listed in --anchors). From the command line, `--plugin MODULE`
imports a module whose import registers codecs this way, so no edit of this file is needed.

The BD table compares --test (default: the last anchor) against every other codec.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import av
import numpy as np
from tqdm import tqdm

from dnervcodec.errors import ConfigError, DnervError, Interrupted
from dnervcodec.options import OneLineParser, float_arg, int_arg, resolution_arg
from dnervcodec.video import parse_resolution, read_video, resolve_input

from . import baselines
from .plot import plot_rd, write_markdown
from .results import ResultsFile

RunPoint = Callable[[np.ndarray, float, Any], dict]
PointSeconds = Callable[[tuple[int, ...], Any], float]

# What a point costs, for the time-left estimate only. The bar counts estimated seconds and tqdm measures how
# fast they pass, so only the ratios between codecs matter. Measured on Bunny 160x320, 132 frames, 2 cores:
# an x264/x265 medium point (encode, decode, PSNR, MS-SSIM) takes 5-15 s, a veryslow one 12-98 s (DNeRV
# points: bench/dnerv_point.py).
BASELINE_S_PER_PIXEL = 1.2e-6
PRESET_FACTOR = {"slow": 2.0, "slower": 3.0, "veryslow": 4.0, "placebo": 8.0}


def baseline_seconds(shape: tuple[int, ...], param: Any = None, preset: str = "medium") -> float:
    """Estimated seconds of one point of an x264/x265 baseline (also the default for a codec without one)."""
    return BASELINE_S_PER_PIXEL * math.prod(shape[:3]) * PRESET_FACTOR.get(preset, 1.0)


@dataclass(frozen=True)
class CodecSpec:
    """A codec the benchmark can sweep: `run_point(frames, fps, param) -> dict` for each value of `params`.

    `seconds(frames.shape, param)` estimates a point's time, so that the time left counts slow codecs (our
    DNeRV points take minutes where a baseline takes seconds); None means as long as a baseline point."""

    name: str
    param: str  # name of the swept parameter, stored with every point (e.g. "crf")
    params: tuple  # default sweep
    run_point: RunPoint
    description: str = ""
    meta: dict = field(default_factory=dict)  # settings recorded in the results file; a resume must match
    seconds: PointSeconds | None = None

    def point_seconds(self, shape: tuple[int, ...], param: Any) -> float:
        return (self.seconds or baseline_seconds)(tuple(shape), param)


# The hook for codecs that are not baselines (our DNeRV codec, for one). Fill it with register_codec().
CODEC_REGISTRY: dict[str, CodecSpec] = {}


def register_codec(spec: CodecSpec, replace: bool = False) -> None:
    if spec.name in CODEC_REGISTRY and not replace:
        raise ConfigError(f"codec '{spec.name}' is already registered")
    CODEC_REGISTRY[spec.name] = spec


# CRF sweeps. On Bunny 160x320 (132 frames) CRF 19..37 spans about 0.3..0.02 bpp for x264/x265 at medium,
# 4:2:0 and 4:4:4 alike (x265 CRF 18 -> 0.33 bpp, 36 -> 0.024 bpp; x264 18 -> 0.33, 36 -> 0.024).
QUICK_CRFS = (19, 22, 25, 28, 31, 34, 37)
FULL_CRFS = (13, 16, 19, 22, 25, 28, 31, 34, 37, 40)

PRESETS = {
    "quick": {
        "clip": "bunny",
        "resolution": "160x320",
        "frames": None,  # all 132
        "anchors": ["x264-medium-420", "x265-medium-420", "x265-medium-444", "x265-veryslow-444"],
        "crfs": list(QUICK_CRFS),
        "test": "dnerv",
        "dnerv_epochs": 40,
    },
    "full": {
        "clip": "bunny",
        "resolution": "640x1280",
        "frames": None,
        "anchors": [
            "x264-medium-420",
            "x264-veryslow-420",
            "x265-medium-420",
            "x265-veryslow-420",
            "x265-medium-444",
            "x265-veryslow-444",
        ],
        "crfs": list(FULL_CRFS),
        "test": "dnerv",
        "dnerv_epochs": 300,
    },
}


def baseline_spec(name: str, crfs: Sequence[float] = QUICK_CRFS, threads: int = 1) -> CodecSpec:
    cfg = baselines.BaselineConfig.from_name(name, threads=threads)
    description = (
        f"{cfg.codec} preset {cfg.preset}, {cfg.pix_fmt}, CRF sweep, encoder-default GOP "
        f"(keyint 250, preset B-frames), BT.709 limited range, raw Annex-B stream"
        + (" without the encoder's info SEI" if cfg.strip_info_sei else "")
        + f", {cfg.threads} thread(s), PyAV {av.__version__}"
    )
    return CodecSpec(
        name=cfg.name,
        param="crf",
        params=tuple(crfs),
        run_point=partial(_baseline_point, cfg),
        description=description,
        meta={"codec": cfg.to_dict(), "av": av.__version__},
        seconds=partial(baseline_seconds, preset=cfg.preset),
    )


def _baseline_point(cfg: baselines.BaselineConfig, frames: np.ndarray, fps: float, crf: float,
                    reference: np.ndarray | None = None) -> dict:
    return baselines.run_point(frames, fps, cfg, crf, reference=reference)


def get_codec(name: str, crfs: Sequence[float] | None = None, threads: int = 1) -> CodecSpec:
    """A registered codec, else a baseline parsed from its name."""
    if name in CODEC_REGISTRY:
        return CODEC_REGISTRY[name]
    try:
        return baseline_spec(name, crfs if crfs is not None else QUICK_CRFS, threads)
    except ConfigError as e:
        registered = ", ".join(CODEC_REGISTRY) or "none"
        raise ConfigError(f"{e} (registered codecs: {registered})") from None


def run_benchmark(
    frames: np.ndarray,
    fps: float,
    codecs: Sequence[CodecSpec],
    out_dir: str | Path,
    clip_meta: dict | None = None,
    test: str | Sequence[str] | None = None,
    progress: bool = True,
    title: str = "Rate-distortion results",
    pareto: bool = False,
    measure: bool = True,
    log_rate: bool = False,
) -> list[dict]:
    """Measure every (codec, param) point not already in out_dir, then write plots and results.md.

    `test` names the codec(s) whose BD table against the others goes into results.md (default: the last);
    `pareto` computes BD metrics on operational fronts (noisy sources); `measure=False` only redraws the
    plots and tables from the points already saved (chains measured by separate runs, with their own
    budgets); `log_rate` draws bpp on a log axis. Returns the results documents, in the order of `codecs`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [c.name for c in codecs]
    if len(set(names)) != len(names):
        raise ConfigError(f"codec listed twice: {names}")
    clip_meta = dict(clip_meta or {})
    clip_meta.setdefault("shape", list(frames.shape))
    files = {
        c.name: ResultsFile(out / f"{c.name}.json", c.name, c.param, c.description, {"clip": clip_meta, **c.meta},
                            strict=measure)
        for c in codecs
    }
    todo = [(c, p) for c in codecs for p in c.params if not files[c.name].done(p)] if measure else []
    skipped = sum(len(c.params) for c in codecs) - len(todo)
    estimates = [c.point_seconds(frames.shape, p) for c, p in todo]
    # The bar counts estimated seconds, not points: a DNeRV point weighs minutes, a baseline point seconds.
    bar = tqdm(total=sum(estimates), desc="rd", disable=not progress, dynamic_ncols=True, smoothing=0,
               bar_format="{l_bar}{bar}| [{elapsed}<{remaining}{postfix}]")
    if skipped and progress:
        tqdm.write(f"resuming: {skipped} point(s) already in {out}")
    for k, ((codec, p), estimate) in enumerate(zip(todo, estimates)):
        bar.set_description(f"point {k + 1}/{len(todo)} {codec.name} {codec.param}={p}")
        t0 = time.perf_counter()
        point = dict(codec.run_point(frames, fps, p))
        point.setdefault(codec.param, p)
        point.setdefault("wall_s", time.perf_counter() - t0)
        missing = [k for k in ("bpp", "psnr-rgb") if k not in point]
        if missing:
            raise ConfigError(f"{codec.name}: run_point returned no {missing}")
        files[codec.name].add(point)
        bar.set_postfix(bpp=f"{point['bpp']:.4f}", psnr=f"{point['psnr-rgb']:.2f}", refresh=False)
        bar.update(estimate)
    bar.close()
    docs = [files[c.name].doc() for c in codecs]
    plot_rd(docs, out / "rd-psnr.png", "psnr-rgb", title=title, log_x=log_rate)
    plot_rd(docs, out / "rd-ms-ssim.png", "ms-ssim-rgb", title=title, log_x=log_rate)
    test = test if test is not None else names[-1]
    intro = ", ".join(f"{k}: {v}" for k, v in clip_meta.items())
    write_markdown(out / "results.md", docs, test=test, title=title, intro=intro, pareto=pareto)
    return docs


def interrupted_message(out: str | Path) -> str:
    """What a stopped benchmark tells the user: rerunning resumes (the bench has no --resume option)."""
    return (f"interrupted: run the same command again to resume (measured points are saved in {out}, "
            f"an unfinished DNeRV point's checkpoint in {Path(out) / 'work'})")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = OneLineParser(
        prog="python -m bench.rd",
        description="Rate-distortion benchmark of libx264/libx265 anchors (and registered codecs).",
        epilog="Presets fill in whatever you do not give: --quick = Bunny 160x320, 132 frames, "
        f"anchors {' '.join(PRESETS['quick']['anchors'])}, CRFs {' '.join(map(str, QUICK_CRFS))}.",
    )
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="small, minutes: Bunny 160x320, 4 anchors")
    g.add_argument("--full", action="store_true", help="large, hours: Bunny 640x1280, 6 anchors")
    ap.add_argument("--clip", help="sample name (bunny, bikes, carphone) or a video path")
    ap.add_argument("--resolution", type=lambda text: resolution_arg(text) and text,
                    help="HEIGHTxWIDTH after centre crop + area resize, e.g. 160x320")
    ap.add_argument("--start", type=int_arg(0), default=0, help="first frame, >= 0 (default 0)")
    ap.add_argument("--frames", type=int_arg(1), help="number of frames, >= 1 (default: all)")
    ap.add_argument("--anchors", nargs="+", help="baseline names like x264-medium-420 x265-veryslow-444")
    ap.add_argument("--crfs", nargs="+", type=float_arg(0, 51), help="CRF values swept by every baseline, [0, 51]")
    ap.add_argument("--test", help="codec compared against the others in the BD table (default: last anchor; "
                    "a registered codec such as dnerv is run too)")
    ap.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import MODULE first (it may call bench.rd.register_codec); repeatable")
    ap.add_argument("--threads", type=int_arg(1), default=1,
                    help="encoder/decoder threads of the baselines, >= 1 (default 1)")
    ap.add_argument("--dnerv-epochs", type=int_arg(1), help="fit epochs of each dnerv point, >= 1 (quick 40, full 300)")
    ap.add_argument("--budgets", nargs="+", type=float_arg(0, 64, lo_open=True, hi_open=True),
                    help="dnerv target bpp values, (0, 64) (default 0.04 0.06 0.1 0.2)")
    ap.add_argument("--out", required=True, help="output folder (reused to resume)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    preset = PRESETS["full" if args.full else "quick"] if (args.quick or args.full) else {}
    clip = args.clip or preset.get("clip")
    if clip is None:
        print("error: give --clip (or --quick / --full)", file=sys.stderr)
        return 2
    resolution = args.resolution or preset.get("resolution")
    frames_n = args.frames if args.frames is not None else preset.get("frames")
    anchors = args.anchors or preset.get("anchors") or PRESETS["quick"]["anchors"]
    crfs = args.crfs or preset.get("crfs") or list(QUICK_CRFS)
    crfs = [int(c) if float(c).is_integer() else c for c in crfs]
    from . import dnerv_point  # registers dnerv and dnerv-nodiff

    # Each DNeRV point checkpoints into OUT/work/CODEC/..., so a stopped run resumes its unfinished point.
    epochs = args.dnerv_epochs or preset.get("dnerv_epochs") or dnerv_point.QUICK_EPOCHS
    dnerv_point.register(epochs, tuple(args.budgets or dnerv_point.QUICK_BUDGETS), work_dir=Path(args.out) / "work")
    args.test = args.test or preset.get("test")
    for module in args.plugin:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            print(f"error: --plugin {module}: {e}", file=sys.stderr)
            return 2
    try:
        codecs = [get_codec(a, crfs, args.threads) for a in anchors]
        if args.test and args.test not in anchors:
            codecs.append(get_codec(args.test, crfs, args.threads))
        res = parse_resolution(resolution) if resolution else None
        video = read_video(resolve_input(clip), resolution=res, start=args.start, num_frames=frames_n)
        t, h, w = video.frames.shape[:3]
        clip_meta = {"clip": str(clip), "resolution": f"{h}x{w}", "start": args.start, "frames": t, "fps": video.fps}
        print(f"clip {clip}: {t} frames of {h}x{w} at {video.fps:g} fps; codecs: {', '.join(c.name for c in codecs)}")
        run_benchmark(
            video.frames,
            video.fps,
            codecs,
            args.out,
            clip_meta,
            test=args.test,
            progress=not args.no_progress,
            title=f"{Path(str(clip)).stem} {h}x{w}, {t} frames",
        )
    except (Interrupted, KeyboardInterrupt):
        print(interrupted_message(args.out), file=sys.stderr)
        return 130
    except DnervError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    print(f"wrote {out / 'results.md'}, {out / 'rd-psnr.png'}, {out / 'rd-ms-ssim.png'} and one JSON per codec")
    return 0


if __name__ == "__main__":
    # Run the importable bench.rd, not this __main__ copy: plugins register into bench.rd.CODEC_REGISTRY.
    from bench.rd import main as _main

    raise SystemExit(_main())
