"""`dnerv`: the command line. Argument parsing and messages only; the work happens in the library.

Every error a user can cause ends as one line on stderr and exit code 2 (130 for Ctrl-C), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .errors import DnervError

RUN_MODEL = "model.pt"
RUN_REPORT = "report.json"
RUN_FRAMES_CSV = "per_frame_psnr.csv"


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="video file, folder of images, or sample:bunny / sample:bikes / sample:carphone")
    p.add_argument("--resolution", help="HEIGHTxWIDTH: centre-crop to this aspect, then area-resize (e.g. 160x320)")
    p.add_argument("--start", type=int, default=0, help="first frame to read (default 0)")
    p.add_argument("--frames", type=int, default=None, help="number of frames to read (default: all)")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--size", default=None, help="stored values, embeddings counted: 85k, 0.35M (default 0.1 bpp)")
    budget.add_argument("--bpp", type=float, default=None, help="target bits per pixel at 8 bits per stored value")
    p.add_argument("--no-diff", action="store_true", help="drop the diff stream (HNeRV-style ablation, same budget)")
    p.add_argument("--diff-stride", type=int, default=None, help="diff embedding at 1/N of the frame (default: auto)")
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--loss", choices=["l2", "l1ssim"], default="l2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in the run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnerv", description="DNeRV neural video codec")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a DNeRV model to a clip and report per-frame PSNR")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, help="run folder: model, report, checkpoint")
    return parser


def _read(args: argparse.Namespace):
    from .video import parse_resolution, read_video

    resolution = parse_resolution(args.resolution) if args.resolution else None
    return read_video(args.input, resolution, args.start, args.frames)


def _sizing(args: argparse.Namespace, num_frames: int, height: int, width: int):
    from .models.sizing import budget_from_bpp, parse_budget, size_model

    if args.size is not None:
        budget = parse_budget(args.size)
    else:
        budget = budget_from_bpp(args.bpp if args.bpp is not None else 0.1, num_frames, height, width)
    return size_model(height, width, num_frames, budget, use_diff=not args.no_diff, diff_stride=args.diff_stride)


def _fit_config(args: argparse.Namespace):
    from .fit import FitConfig

    kwargs = {} if args.lr is None else {"lr": args.lr}
    return FitConfig(epochs=args.epochs, batch_size=args.batch_size, loss=args.loss, seed=args.seed,
                     checkpoint_minutes=args.checkpoint_minutes, **kwargs)


def cmd_fit(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .fit import fit
    from .models.dnerv import count_params, decoder_params

    video = _read(args)
    T, H, W, _ = video.frames.shape
    sizing = _sizing(args, T, H, W)
    fit_cfg = _fit_config(args)
    dec = sizing.config.decoder
    print(
        f"{T} frames {H}x{W}; budget {sizing.budget} values, model stores {sizing.stored} "
        f"(decoder {decoder_params(dec)}, embeddings {sizing.stored - decoder_params(dec)}); "
        f"strides {list(dec.strides)}, diff {'off' if not dec.diff_ch else f'1/{dec.diff_stride}'}",
        file=sys.stderr,
    )
    run = Path(args.output)
    result = fit(video.frames, sizing.config, fit_cfg, args.device, run, args.resume, not args.quiet)
    run.mkdir(parents=True, exist_ok=True)
    torch.save({"model_cfg": sizing.config.to_dict(), "state": result.model.state_dict()}, run / RUN_MODEL)
    report = {
        "input": str(args.input),
        "frames": T,
        "height": H,
        "width": W,
        "budget": sizing.budget,
        "stored_values": sizing.stored,
        "decoder_params": decoder_params(dec),
        "model_params_with_encoders": count_params(result.model),
        "bpp_at_8_bits": sizing.stored * 8 / (T * H * W),
        "model": sizing.config.to_dict(),
        "fit": fit_cfg.to_dict(),
        "psnr": result.psnr,
        "seconds": result.seconds,
        "history": result.history,
    }
    (run / RUN_REPORT).write_text(json.dumps(report, indent=1))
    np.savetxt(run / RUN_FRAMES_CSV, np.c_[np.arange(T), result.per_frame_psnr], fmt=["%d", "%.4f"],
               delimiter=",", header="frame,psnr_db", comments="")
    print(f"PSNR {result.psnr:.2f} dB after {fit_cfg.epochs} epochs in {result.seconds / 60:.1f} min; "
          f"saved {run / RUN_MODEL}, {run / RUN_REPORT}, {run / RUN_FRAMES_CSV}")
    return 0


COMMANDS = {"fit": cmd_fit}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DnervError as e:
        print(f"dnerv {args.command}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"dnerv {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"dnerv {args.command}: error: out of memory; use a smaller --resolution or fewer --frames", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
