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


def _add_overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--overwrite", action="store_true",
                   help="replace an existing output (a folder is replaced only if it holds nothing but our frames)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dnerv", description="DNeRV neural video codec")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a DNeRV model to a clip and report per-frame PSNR")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, help="run folder: model, report, checkpoint")
    _add_overwrite_option(p)

    p = sub.add_parser("encode", help="compress a clip into one .dnerv file")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, help="the .dnerv file to write")
    _add_overwrite_option(p)
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
    _add_overwrite_option(p)
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
    p.add_argument("-o", "--output", required=True,
                   help=".mkv (FFV1), .mp4 (lossless x264rgb), .y4m, DIR/ for PNGs, or - for y4m on stdout")
    _add_overwrite_option(p)
    p.add_argument("--start", type=int, default=0, help="first frame to decode")
    p.add_argument("--frames", type=int, default=None, help="number of frames to decode (default: to the end)")
    p.add_argument("--device", default="cpu", help="cpu (default, bit-exact on one machine), cuda or auto")

    p = sub.add_parser("info", help="describe a .dnerv file: version, video, decoder, bytes of each part")
    p.add_argument("input", help="a .dnerv file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")

    sub.add_parser("bench", help="rate-distortion benchmark against x264/x265: the options of python -m bench.rd",
                   add_help=False)
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
    from .outputs import write_bytes_atomic, write_file_atomic

    run = Path(args.output)
    _check_fit_output(args)
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
    result = fit(video.frames, sizing.config, fit_cfg, args.device, run, args.resume, not args.quiet)
    run.mkdir(parents=True, exist_ok=True)
    model = {"model_cfg": sizing.config.to_dict(), "state": result.model.state_dict()}
    write_file_atomic(run / RUN_MODEL, lambda tmp: torch.save(model, tmp), args.overwrite)
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
    write_bytes_atomic(run / RUN_REPORT, json.dumps(report, indent=1).encode(), args.overwrite)
    write_file_atomic(run / RUN_FRAMES_CSV, lambda tmp: np.savetxt(
        tmp, np.c_[np.arange(T), result.per_frame_psnr], fmt=["%d", "%.4f"], delimiter=",",
        header="frame,psnr_db", comments=""), args.overwrite)
    print(f"PSNR {result.psnr:.2f} dB after {fit_cfg.epochs} epochs in {result.seconds / 60:.1f} min; "
          f"saved {run / RUN_MODEL}, {run / RUN_REPORT}, {run / RUN_FRAMES_CSV}")
    return 0


def _check_fit_output(args: argparse.Namespace) -> None:
    """`fit -o RUN`: a folder (new or not) whose result files are replaced only with -y; nothing else in it is touched."""
    from .errors import OutputError
    from .outputs import check_file_output, is_stdout

    run = Path(args.output)
    if is_stdout(args.output):
        raise OutputError("fit writes a run folder, not standard output: give a folder name")
    if run.exists() and not run.is_dir():
        raise OutputError(f"{run} exists and is not a folder; fit writes a run folder")
    for name in (RUN_MODEL, RUN_REPORT, RUN_FRAMES_CSV):
        check_file_output(run / name, args.overwrite)


def _check_file_output(args: argparse.Namespace) -> None:
    """A single output file: refused before any work when it exists (without -y), is a folder, or is '-'."""
    from .errors import OutputError
    from .outputs import check_file_output, is_stdout

    if is_stdout(args.output):
        raise OutputError(f"{args.command} cannot write to standard output (only decode -o - can): give a file name")
    check_file_output(args.output, args.overwrite)


def cmd_encode(args: argparse.Namespace) -> int:
    from .codec import decode
    from .metrics import psnr
    from .outputs import run_folder, write_bytes_atomic

    _check_file_output(args)
    with run_folder(_run_dir(args), remove_on_success=not args.run_dir) as run_dir:
        report = _encode(args, run_dir)
        write_bytes_atomic(args.output, report.data, args.overwrite)
    T, H, W = report.encoded_frames.shape[:3]
    out = Path(args.output)
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


def _encode(args: argparse.Namespace, run_dir: Path):
    from .codec import EncodeConfig, encode_video

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
    return encode_video(video, cfg, run_dir, args.resume, not args.quiet)


def _run_dir(args: argparse.Namespace) -> Path:
    """--run-dir (always kept), or OUTPUT.run beside the output (removed after success if this program made it)."""
    out = Path(args.output)
    return Path(args.run_dir) if args.run_dir else out.with_name(out.name + ".run")


def cmd_denoise(args: argparse.Namespace) -> int:
    import time

    from .codec import denoiser_for
    from .outputs import run_folder
    from .video import check_output_path, write_video

    check_output_path(args.output, args.overwrite)
    t0 = time.perf_counter()
    with run_folder(_run_dir(args), remove_on_success=not args.run_dir) as run_dir:
        video = _read(args)
        denoiser = denoiser_for(args.method, args.seed, args.device, args.iters)
        clean = denoiser.denoise(video.frames, args.sigma, not args.quiet, run_dir=run_dir, resume=args.resume)
        path = write_video(args.output, clean, video.rate, args.overwrite)
    print(f"{path}: {clean.shape[0]} frames {clean.shape[1]}x{clean.shape[2]} denoised by {args.method} "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from .codec import decode
    from .errors import OutputError
    from .outputs import is_stdout
    from .rate import header_rate
    from .video import check_output_path, write_video, write_y4m_stream

    to_stdout = is_stdout(args.output)
    if to_stdout and sys.stdout.isatty():
        raise OutputError("-o - writes a y4m stream: pipe it (| ffplay -, | ffmpeg -i - ...) instead of a terminal")
    if not to_stdout:
        check_output_path(args.output, args.overwrite)
    frames, header = decode(args.input, args.start, args.frames, args.device)
    shape = f"{frames.shape[0]} frames {frames.shape[1]}x{frames.shape[2]}"
    if to_stdout:  # stdout carries the video and nothing else; the summary goes to stderr
        sys.stdout.flush()
        write_y4m_stream(sys.stdout.buffer, frames, header_rate(header["video"]))
        print(f"y4m on standard output: {shape}", file=sys.stderr)
        return 0
    path = write_video(args.output, frames, header_rate(header["video"]), args.overwrite)
    print(f"{path}: {shape}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .info import describe, format_info

    info = describe(Path(args.input))
    print(json.dumps(info, indent=1) if args.json else format_info(info))
    return 0


BENCH_PACKAGES = {"matplotlib": "matplotlib", "skvideo": "scikit-video", "cv2": "opencv-python-headless"}


def bench_missing(module: str | None) -> str:
    """What to install when importing the benchmark failed on `module`: the bench package or one of its extras."""
    top = (module or "bench").split(".")[0]
    if top == "bench":
        return ("the benchmark (package bench) is not installed: in a source checkout, "
                "pip install -e '.[bench]'")
    package = BENCH_PACKAGES.get(top, top)
    return f"the benchmark needs {package}, which is not installed: pip install {package} (or the extra '.[bench]')"


def cmd_bench(rest: list[str]) -> int:
    """Forward everything after `dnerv bench` to bench.rd, installed with dnervcodec (extras: '.[bench]')."""
    try:
        from bench.rd import main as rd_main
    except ModuleNotFoundError as e:
        print(f"dnerv bench: error: {bench_missing(e.name)}", file=sys.stderr)
        return 2
    return rd_main(rest)


COMMANDS = {"fit": cmd_fit, "encode": cmd_encode, "decode": cmd_decode, "info": cmd_info, "denoise": cmd_denoise}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        return cmd_bench(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe must fail here, inside the handlers, not at interpreter exit
        return code
    except DnervError as e:
        print(f"dnerv {args.command}: error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"dnerv {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dnerv info x.dnerv | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print(f"dnerv {args.command}: error: out of memory; use a smaller --resolution or fewer --frames", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
