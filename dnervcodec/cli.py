"""`dnerv`: the command line. Argument parsing and messages only; the work happens in the library.

Every error a user can cause ends as one line on stderr and exit code 2 (130 for Ctrl-C), never a traceback;
so does running out of memory (MemoryError or torch's allocation RuntimeError). Anything else is our bug: one
line and exit code 1. `dnerv --debug ...` prints the traceback before that line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
    budget.add_argument("--bpp", type=float, default=None, help="target bits per pixel before entropy coding: stored values x --bits (8 for fit) / pixels")
    p.add_argument("--no-diff", action="store_true", help="drop the diff stream (HNeRV-style ablation, same budget)")
    p.add_argument("--diff-stride", type=int, default=None, help="diff embedding at 1/N of the frame (default: auto)")
    p.add_argument("--epochs", type=int, default=50, help="fitting epochs (default 50, about 4 min at 160x320 here; the paper uses 300)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 1e-3)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--loss", choices=["l2", "l1ssim"], default="l2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in the run folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _bytes(text: str) -> int:
    """'16G', '512M', '2T' (binary units) or a number of bytes."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, scale = (t[:-1], units[t[-1]]) if t and t[-1] in units else (t, 1)
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 16G, 512M or 2T") from None
    if not 0 < value < 1 << 62:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return int(value)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive and finite")
    return value


def _add_limit_options(p: argparse.ArgumentParser) -> None:
    from .models.cost import DecodeLimits

    d = DecodeLimits()
    p.add_argument("--max-decode-gflops", type=_positive, default=d.max_gflops, metavar="N",
                   help=f"refuse a file whose decoder needs more GFLOPs per frame (default {d.max_gflops:g}); "
                        "raise it only for files you trust")
    p.add_argument("--max-decode-memory", type=_bytes, default=d.max_memory_bytes, metavar="SIZE",
                   help=f"refuse a file whose decoder needs more activation memory per frame, e.g. 32G "
                        f"(default {d.max_memory_bytes >> 30}G); frames are decoded in batches that fit it")


def _limits(args: argparse.Namespace):
    from .models.cost import DecodeLimits

    return DecodeLimits(max_gflops=args.max_decode_gflops, max_memory_bytes=args.max_decode_memory)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnerv", description="DNeRV neural video codec")
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a DNeRV model to a clip and report per-frame PSNR")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, help="run folder: model, report, checkpoint")

    p = sub.add_parser("encode", help="compress a clip into one .dnerv file")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, help="the .dnerv file to write")
    p.add_argument("--prune", type=float, default=0.0, help="fraction of decoder parameters to remove by structured channel pruning (e.g. 0.1)")
    p.add_argument("--prune-epochs", type=int, default=None, help="fine-tuning epochs after pruning (default 20%% of --epochs)")
    p.add_argument("--bits", type=int, default=8, help="quantization bits for weights and embeddings (2..16)")
    p.add_argument("--qat-epochs", type=int, default=0,
                   help="quantization-aware fine-tuning of the stored decoder and embeddings (epochs; default 0)")
    p.add_argument("--qat-lr", type=float, default=None, help="peak learning rate of that fine-tuning (default lr/10)")
    p.add_argument("--run-dir", help="checkpoint folder (default: OUTPUT.run, removed after success)")
    p.add_argument("--denoise", choices=["none", "stbn", "nlm", "vdp"], default="none",
                   help="denoise the clip before encoding (self-supervised stbn/vdp, or OpenCV non-local means)")
    p.add_argument("--sigma", type=float, default=None, help="noise level on 0-255 for --denoise (default: estimated)")
    p.add_argument("--denoise-iters", type=int, default=None, help="training iterations of the learned denoiser")

    p = sub.add_parser("denoise", help="denoise a clip with a self-supervised video denoiser")
    _add_input_options(p)
    p.add_argument("-o", "--output", required=True, help=".mkv, .mp4, .y4m or DIR/ (lossless)")
    p.add_argument("--method", choices=["stbn", "nlm", "vdp"], default="stbn")
    p.add_argument("--sigma", type=float, default=None, help="noise level on 0-255 (default: estimated)")
    p.add_argument("--iters", type=int, default=None, help="training iterations (learned methods)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--run-dir", help="checkpoint folder (default: OUTPUT.run, removed after success)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("decode", help="rebuild the video from a .dnerv file")
    p.add_argument("input", help="a .dnerv file")
    p.add_argument("-o", "--output", required=True, help=".mkv (FFV1), .mp4 (lossless x264rgb), .y4m, or DIR/ for PNGs")
    p.add_argument("--start", type=int, default=0, help="first frame to decode")
    p.add_argument("--frames", type=int, default=None, help="number of frames to decode (default: to the end)")
    p.add_argument("--device", default="cpu", help="cpu (default, bit-exact on one machine), cuda or auto")
    _add_limit_options(p)

    p = sub.add_parser("info", help="describe a .dnerv file: version, video, decoder, bytes of each part")
    p.add_argument("input", help="a .dnerv file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_limit_options(p)

    sub.add_parser("bench", help="rate-distortion benchmark against x264/x265: the options of python -m bench.rd",
                   add_help=False)
    for p in sub.choices.values():  # `dnerv decode --debug ...` works too
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
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


def cmd_encode(args: argparse.Namespace) -> int:
    from .codec import EncodeConfig, decode, encode_video
    from .metrics import psnr
    from .video import write_bytes_atomic

    video = _read(args)
    T, H, W, _ = video.frames.shape
    fit_cfg = _fit_config(args)
    prune_epochs = args.prune_epochs if args.prune_epochs is not None else max(1, args.epochs // 5)
    cfg = EncodeConfig(
        resolution=video.frames.shape[1:3], start=args.start, num_frames=T, size=args.size,
        bpp=args.bpp if args.bpp is not None else 0.1, use_diff=not args.no_diff, diff_stride=args.diff_stride,
        fit=fit_cfg, prune=args.prune, prune_epochs=prune_epochs if args.prune > 0 else 0, bits=args.bits,
        qat_epochs=args.qat_epochs, qat_lr=args.qat_lr,
        device=args.device, denoise=args.denoise, denoise_sigma=args.sigma, denoise_iters=args.denoise_iters,
    )
    out = Path(args.output)
    run_dir = _run_dir(args)
    report = encode_video(video, cfg, run_dir, args.resume, not args.quiet)
    write_bytes_atomic(out, report.data)
    _finish_run_dir(args, run_dir)
    decoded, _ = decode(report.data)
    quality = psnr(report.encoded_frames, decoded)
    pruned = f", after pruning {report.psnr_pruned:.2f} dB" if report.psnr_pruned is not None else ""
    if report.psnr_qat is not None:
        pruned += f", {args.bits}-bit {report.psnr_qat[0]:.2f} -> {report.psnr_qat[1]:.2f} dB by QAT"
    against = f" against the {args.denoise}-denoised input" if args.denoise != "none" else ""
    print(f"{out}: {len(report.data)} bytes, {report.bpp:.4f} bpp, PSNR {quality:.2f} dB decoded{against} "
          f"(float model {report.psnr_fit:.2f} dB{pruned}); {T} frames {H}x{W}, "
          f"encode {sum(report.timings.values()) / 60:.1f} min")
    return 0


def _run_dir(args: argparse.Namespace) -> Path:
    """--run-dir, or OUTPUT.run beside the output (removed after success)."""
    out = Path(args.output)
    return Path(args.run_dir) if args.run_dir else out.with_name(out.name + ".run")


def _finish_run_dir(args: argparse.Namespace, run_dir: Path) -> None:
    import shutil

    if not args.run_dir:
        shutil.rmtree(run_dir, ignore_errors=True)


def cmd_denoise(args: argparse.Namespace) -> int:
    import time

    from .codec import denoiser_for
    from .video import check_output_path, write_video

    check_output_path(args.output)
    video = _read(args)
    run_dir = _run_dir(args)
    t0 = time.perf_counter()
    denoiser = denoiser_for(args.method, args.seed, args.device, args.iters)
    clean = denoiser.denoise(video.frames, args.sigma, not args.quiet, run_dir=run_dir, resume=args.resume)
    path = write_video(args.output, clean, video.fps)
    _finish_run_dir(args, run_dir)
    print(f"{path}: {clean.shape[0]} frames {clean.shape[1]}x{clean.shape[2]} denoised by {args.method} "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from .codec import decode
    from .video import check_output_path, write_video

    check_output_path(args.output)
    frames, header = decode(args.input, args.start, args.frames, args.device, _limits(args))
    path = write_video(args.output, frames, header["video"]["fps"])
    print(f"{path}: {frames.shape[0]} frames {frames.shape[1]}x{frames.shape[2]}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .info import describe, format_info

    info = describe(Path(args.input), _limits(args))
    print(json.dumps(info, indent=1) if args.json else format_info(info))
    return 0


def cmd_bench(rest: list[str]) -> int:
    """Forward everything after `dnerv bench` to bench.rd, which lives in the source checkout."""
    sys.path.insert(0, os.getcwd())
    try:
        from bench.rd import main as rd_main
    except ImportError:
        print("dnerv bench: error: the benchmark lives in the source checkout; run it from the repository root",
              file=sys.stderr)
        return 2
    return rd_main(rest)


COMMANDS = {"fit": cmd_fit, "encode": cmd_encode, "decode": cmd_decode, "info": cmd_info, "denoise": cmd_denoise}


OOM_HINTS = {"decode": "lower --max-decode-memory (smaller batches) or decode fewer --frames"}


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or torch's allocation failure (a RuntimeError: "out of memory", "can't allocate memory")."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    skip = 1 if argv[:1] == ["--debug"] else 0
    if argv[skip : skip + 1] == ["bench"]:
        return cmd_bench(argv[skip + 1 :])
    parser = build_parser()
    args = parser.parse_args(argv)
    name = f"dnerv {args.command}"
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe must fail here, inside the handlers, not at interpreter exit
        return code
    except BrokenPipeError:  # `dnerv info x.dnerv | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        _traceback(args)
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except DnervError as e:
        _traceback(args)
        print(f"{name}: error: {_one_line(e)}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except Exception as e:  # noqa: BLE001 - every path ends as one line; --debug shows the traceback
        _traceback(args)
        if _out_of_memory(e):
            hint = OOM_HINTS.get(args.command, "use a smaller --resolution or fewer --frames")
            asked = re.search(r"allocate (\d+) bytes", str(e))
            size = f" (an allocation of {int(asked[1]) / 2**30:.3g} GiB failed)" if asked else ""
            print(f"{name}: error: out of memory{size}; {hint}", file=sys.stderr)
            return 2
        if isinstance(e, OSError):  # a file or disk problem the user can fix: permissions, space, a folder
            print(f"{name}: error: {_one_line(e)}", file=sys.stderr)
            return 2
        print(f"{name}: internal error: {type(e).__name__}: {_one_line(e, 300)} (rerun with --debug for the "
              "traceback, and please report it)", file=sys.stderr)
        return 1


def _traceback(args: argparse.Namespace) -> None:
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exc()


def _one_line(e: BaseException, limit: int | None = None) -> str:
    """The message on one line (a file name or a library's message may hold line breaks)."""
    text = " ".join(str(e).split())
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":
    sys.exit(main())
