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

from . import __version__
from .errors import DnervError
from .options import (DEFAULT_LR, DEFAULT_PRESET, PRESETS, DefaultsFormatter, OneLineParser, budget_arg,
                      device_arg, diff_stride_arg, duration_arg, float_arg, float_range, int_arg, int_range, ray_arg,
                      resolution_arg)
from .wording import duration, plural

RUN_MODEL = "model.pt"
RUN_REPORT = "report.json"
RUN_FRAMES_CSV = "per_frame_psnr.csv"
MAX_SEED = 2**32 - 1
RD_SHARE = 5  # encode: by default 1/RD_SHARE of --epochs is rate-distortion fine-tuning (docs/rd.md)
RD_VALUE_BITS = 6.0  # and the model is sized at this many bits a stored value
DENOISE_ITERS = "stbn 1500, vdp 3000"  # STBN.iters and VDP.iters; tests/test_cli_options.py checks them
LONG_RUN_SECONDS = 3600.0  # a run expected to take longer says so before it starts, with what shortens it
EXIT_SECONDS = 2.0  # --time: the interpreter's exit after main() (unloading torch took 1.5 s here), kept free


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="video file, folder of images, or sample:bunny / sample:bikes / sample:carphone")
    p.add_argument("--resolution", type=resolution_arg, metavar="HxW",
                   help="centre-crop to this aspect, then area-resize, e.g. 160x320 (default: the source size)")
    _add_range_options(p, "read")


def _add_range_options(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("--start", type=int_arg(0), default=0, metavar="S", help=f"first frame to {verb}, >= 0")
    p.add_argument("--frames", type=int_arg(1), default=None, metavar="N",
                   help=f"number of frames to {verb}, >= 1; the range must lie inside the clip (default: to the end)")


def _add_run_options(p: argparse.ArgumentParser, what: str) -> None:
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help=f"continue from the checkpoint in {what}")
    again.add_argument("--restart", action="store_true",
                       help=f"discard the checkpoint in {what} and start from the beginning")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--size", type=budget_arg, default=None, metavar="VALUES",
                        help="stored values, embeddings counted: 85k, 0.35M; 1k to 1000M; with rate-distortion "
                             "fine-tuning the file aims at VALUES bytes (default: from --bpp)")
    budget.add_argument("--bpp", type=float_arg(0, 64, lo_open=True, hi_open=True), default=None,
                        help="target bits per pixel: with rate-distortion fine-tuning (encode's default) the size of "
                             "the file; otherwise stored values x --bits (8 for fit) / pixels before entropy coding; "
                             f"{float_range(0, 64, True, True)} (default: 0.1)")
    p.add_argument("--no-diff", action="store_true", help="drop the diff stream (HNeRV-style ablation, same budget)")
    p.add_argument("--arch", choices=["dnerv", "dnerv-paper"], default="dnerv",
                   help="dnerv: encoders of width 16, fitting about 2x faster (encoders are not stored); "
                        "dnerv-paper: the paper's width-64 ConvNeXt encoders (default: %(default)s)")
    p.add_argument("--diff-stride", type=diff_stride_arg, default=None, metavar="N",
                   help="diff embedding at 1/N of the frame; N a product of at most three strides of 2..5, "
                        "e.g. 16, 32, 64 (default: chosen by the sizing)")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int_arg(1), default=None, metavar="N",
                        help=f"fitting epochs, >= 1 (default: {PRESETS[DEFAULT_PRESET]}; the paper uses 300)")
    length.add_argument("--preset", choices=list(PRESETS), default=None,
                        help="epochs by name: " + ", ".join(f"{k} {v}" for k, v in PRESETS.items()) +
                             " (the DNeRV paper's count); like x264's presets, the time grows with the clip "
                             f"(default: {DEFAULT_PRESET}, when neither --epochs nor --time is given)")
    length.add_argument("--time", type=duration_arg, default=None, metavar="T",
                        help="time budget of the whole command, e.g. 90s, 20m, 1h30m or 1.5h, up to 7 days: "
                             "a timing probe of the model picks the epochs that end it within T, re-planned at "
                             "every epoch as the machine's speed changes, so the result is not reproducible "
                             "(default: none)")
    p.add_argument("--lr", type=float_arg(0, lo_open=True), default=DEFAULT_LR, help="peak learning rate, > 0")
    p.add_argument("--batch-size", type=int_arg(1), default=1, metavar="N", help="frames per optimizer step, >= 1")
    p.add_argument("--loss", choices=["l2", "l1ssim"], default="l2",
                   help="l2 (MSE) or l1ssim (0.7 L1 + 0.3 (1 - SSIM), as NeRV)")
    _add_seed_device(p, "auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--checkpoint-minutes", type=float_arg(0, lo_open=True), default=5.0, metavar="M",
                   help="minutes between checkpoints in the run folder, > 0")


def _add_segment_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--segment-frames", type=int_arg(1), default=None, metavar="N",
                   help="cut the clip into segments of about N frames (ceil(frames / N) of near-equal length), "
                        "each fitted on its own with its own decoder, so segments can be fitted in parallel and "
                        "decoded alone; --bpp applies to each, --size is split by frames; >= 1 (default: the "
                        "whole clip, one segment)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int_arg(1), default=1, metavar="K",
                       help="fit up to K segments at once in local processes; the file is the same for any K, "
                            ">= 1")
    where.add_argument("--ray", type=ray_arg, default=None, metavar="ADDRESS",
                       help="fit each segment as a Ray task; ADDRESS is auto (join the local Ray instance, or start "
                            "one) or a running cluster's HOST:PORT, checked when the command line is read; the run "
                            "folder must be on storage every machine shares for a retried task to resume "
                            "(default: no Ray)")
    p.add_argument("--threads", type=int_arg(1), default=None, metavar="N",
                   help="torch threads of each segment's job, fixed so the file does not depend on --workers or "
                        "--ray (CPU results change with the thread count), >= 1 (default: 1 with several segments, "
                        "else torch's own)")


def _add_seed_device(p: argparse.ArgumentParser, device: str, device_help: str) -> None:
    p.add_argument("--seed", type=int_arg(0, MAX_SEED), default=0,
                   help=f"seed of every random choice, {int_range(0, MAX_SEED)}: the same seed and machine give "
                        "the same result")
    p.add_argument("--device", type=device_arg, default=device, help=device_help)


def _add_sigma(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sigma", type=float_arg(0, 255, lo_open=True), default=None,
                   help=f"noise level on the 0-255 scale, {float_range(0, 255, True)} (default: estimated from the clip)")


def _add_overwrite_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-y", "--overwrite", action="store_true",
                   help="replace an existing output (a folder is replaced only if it holds nothing but our frames)")


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
    from .options import DEFAULT_MAX_DECODE_GFLOPS, DEFAULT_MAX_DECODE_MEMORY

    p.add_argument("--max-decode-gflops", type=_positive, default=DEFAULT_MAX_DECODE_GFLOPS, metavar="N",
                   help="refuse a file whose decoder needs more GFLOPs per frame; raise it only for files you trust "
                        "(default: %(default)s)")
    p.add_argument("--max-decode-memory", type=_bytes, default=f"{DEFAULT_MAX_DECODE_MEMORY >> 30}G", metavar="SIZE",
                   help="refuse a file whose decoder needs more activation memory per frame, e.g. 32G; frames are "
                        "decoded in batches that fit it (default: %(default)s)")


def _limits(args: argparse.Namespace):
    from .models.cost import DecodeLimits

    return DecodeLimits(max_gflops=args.max_decode_gflops, max_memory_bytes=args.max_decode_memory)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dnerv", description="DNeRV neural video codec", formatter_class=DefaultsFormatter)
    parser.add_argument("--version", action="version", version=f"dnerv {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}

    def command(name: str, help: str, **kwargs) -> argparse.ArgumentParser:
        commands[name] = sub.add_parser(name, help=help, description=help, formatter_class=DefaultsFormatter,
                                        **kwargs)
        return commands[name]

    p = command("fit", "fit a DNeRV model to a clip and report per-frame PSNR")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, help="run folder: model, report, checkpoint")
    _add_overwrite_option(p)
    _add_run_options(p, "the run folder")

    p = command("encode", "compress a clip into one .dnerv file")
    _add_input_options(p)
    _add_model_options(p)
    p.add_argument("-o", "--output", required=True, help="the .dnerv file to write")
    _add_overwrite_option(p)
    p.add_argument("--prune", type=float_arg(0, 1, hi_open=True), default=0.0, metavar="R",
                   help="fraction of decoder parameters removed by structured channel pruning, "
                        f"{float_range(0, 1, hi_open=True)}, e.g. 0.1")
    p.add_argument("--prune-epochs", type=int_arg(0), default=None, metavar="N",
                   help="fine-tuning epochs after pruning, >= 0 (default: 20%% of --epochs, at least 1)")
    p.add_argument("--bits", type=int_arg(2, 16), default=8, metavar="B",
                   help="quantization bits of weights and embeddings, 2..16")
    p.add_argument("--qat-epochs", type=int_arg(0), default=0, metavar="N",
                   help="epochs of quantization-aware fine-tuning of the stored decoder and embeddings, >= 0")
    p.add_argument("--qat-lr", type=float_arg(0, lo_open=True), default=None, metavar="LR",
                   help="peak learning rate of that fine-tuning, > 0 (default: --lr / 10)")
    p.add_argument("--rd-epochs", type=int_arg(0), default=None, metavar="N",
                   help="epochs of rate-distortion fine-tuning (learned quantization steps, MSE + lambda * rate, "
                        "the file aimed at --bpp/--size), >= 0; 0 = the fit alone, then min/max quantization at "
                        "--bits (default: a fifth of --epochs, taken from the fit; 0 with --bits or --qat-epochs)")
    p.add_argument("--lambda", dest="rd_lambda", type=float_arg(0, lo_open=True), default=None, metavar="L",
                   help="fixed rate-distortion trade-off (MSE + L * bpp), > 0, instead of aiming at --bpp/--size "
                        "(default: none, lambda follows the target size)")
    p.add_argument("--value-bits", type=float_arg(1, 16), default=None, metavar="B",
                   help="bits a stored value is expected to cost after rate-distortion fine-tuning, which sizes "
                        f"the model for the target file, {float_range(1, 16)} (default: {RD_VALUE_BITS:g})")
    _add_segment_options(p)
    p.add_argument("--run-dir", metavar="DIR", help="checkpoint folder (default: OUTPUT.run, removed after success)")
    p.add_argument("--denoise", choices=["none", "stbn", "nlm", "vdp"], default="none",
                   help="denoise the clip before encoding (self-supervised stbn/vdp, or OpenCV non-local means)")
    _add_sigma(p)
    p.add_argument("--denoise-iters", type=int_arg(1), default=None, metavar="N",
                   help=f"training iterations of stbn or vdp, >= 1 (default: {DENOISE_ITERS})")
    _add_run_options(p, "the run folder")

    p = command("denoise", "denoise a clip with a self-supervised video denoiser")
    _add_input_options(p)
    p.add_argument("-o", "--output", required=True, help=".mkv, .mp4, .y4m or DIR/ (lossless)")
    _add_overwrite_option(p)
    p.add_argument("--method", choices=["stbn", "nlm", "vdp"], default="stbn",
                   help="stbn (blind-spot network), vdp (video dynamics prior) or nlm (OpenCV non-local means)")
    _add_sigma(p)
    p.add_argument("--iters", type=int_arg(1), default=None, metavar="N",
                   help=f"training iterations of stbn or vdp, >= 1 (default: {DENOISE_ITERS})")
    _add_seed_device(p, "auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--run-dir", metavar="DIR", help="checkpoint folder (default: OUTPUT.run, removed after success)")
    _add_run_options(p, "the run folder")

    p = command("decode", "rebuild the video from a .dnerv file")
    p.add_argument("input", help="a .dnerv file")
    p.add_argument("-o", "--output", required=True,
                   help=".mkv (FFV1), .mp4 (lossless x264rgb), .y4m, DIR/ for PNGs, or - for y4m on stdout")
    _add_overwrite_option(p)
    _add_range_options(p, "decode")
    p.add_argument("--device", type=device_arg, default="cpu",
                   help="cpu (bit-exact on one machine), cuda, cuda:N or auto")
    _add_limit_options(p)

    p = command("info", "describe a .dnerv file: version, video, decoder, bytes of each part")
    p.add_argument("input", help="a .dnerv file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_limit_options(p)

    sub.add_parser("bench", help="rate-distortion benchmark against x264/x265: the options of python -m bench.rd",
                   add_help=False)
    parser.set_defaults(_commands=commands)
    for p in sub.choices.values():  # `dnerv decode --debug ...` works too
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def options_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The README's table of every option, its help and default exactly as `--help` prints them (a test
    keeps the two equal): one row per option and wording, naming the commands that take it."""
    parser = parser or build_parser()
    rows: dict[tuple[str, str], list[str]] = {}
    for name, sub in parser.get_default("_commands").items():
        formatter = sub.formatter_class(sub.prog)
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            text = formatter._get_help_string(action) % {"default": action.default}
            flag = ", ".join(action.option_strings)
            if action.choices:
                flag += " {" + ",".join(map(str, action.choices)) + "}"
            elif action.nargs != 0:
                flag += f" {action.metavar or action.dest.upper()}"
            rows.setdefault((flag, text.replace("|", "\\|")), []).append(name)
    lines = ["| option | commands | what it does (default) |", "| --- | --- | --- |"]
    lines += [f"| `{flag}` | {' '.join(names)} | {text} |" for (flag, text), names in rows.items()]
    return "\n".join(lines)


def check_combinations(args: argparse.Namespace) -> None:
    """Options that are each valid but meaningless together: refused, as a typo would be."""
    p = args._commands[args.command]
    if args.command == "encode" and args.time is not None:
        for name in ("prune_epochs", "rd_epochs", "qat_epochs"):
            if getattr(args, name):
                p.error(f"--{name.replace('_', '-')}: --time plans the epochs of every stage; give 0 to skip "
                        "the stage, or leave it out")
        if args.segment_frames is not None:  # one deadline for segments fitted in turn or side by side: not yet
            p.error("--segment-frames: --time does not plan segmented encodes yet; give --epochs or --preset")
    if args.command == "encode":
        if args.prune_epochs is not None and args.prune == 0:
            p.error("--prune-epochs needs --prune above 0")
        if args.qat_lr is not None and args.qat_epochs == 0:
            p.error("--qat-lr needs --qat-epochs above 0")
        if args.rd_epochs and (args.qat_epochs > 0 or args.bits != 8):
            p.error("--rd-epochs learns its own quantization: leave out --bits and --qat-epochs, or give --rd-epochs 0")
        if args.rd_lambda is not None and args.rd_epochs == 0:
            p.error("--lambda needs the rate-distortion stage (--rd-epochs above 0)")
        if args.denoise == "none" and (args.sigma is not None or args.denoise_iters is not None):
            p.error(f"--{'sigma' if args.sigma is not None else 'denoise-iters'} needs --denoise")
        if args.denoise == "nlm" and args.denoise_iters is not None:
            p.error("--denoise-iters applies to stbn and vdp; nlm is not trained")
    if args.command == "denoise" and args.method == "nlm" and args.iters is not None:
        p.error("--iters applies to stbn and vdp; nlm is not trained")


def _read(args: argparse.Namespace):
    from .video import read_video

    video = read_video(args.input, args.resolution, args.start, args.frames)
    for note in video.notes:
        print(f"dnerv {args.command}: note: {note}", file=sys.stderr)
    return video


def _sizing(args: argparse.Namespace, num_frames: int, height: int, width: int):
    from .models.dnerv import encoder_width
    from .models.sizing import budget_from_bpp, parse_budget, size_model

    per_frame = None
    if args.size is not None:
        budget = parse_budget(args.size)
    else:
        budget = budget_from_bpp(args.bpp if args.bpp is not None else 0.1, num_frames, height, width)
        per_frame = budget / num_frames
    return size_model(height, width, num_frames, budget, use_diff=not args.no_diff, diff_stride=args.diff_stride,
                      budget_per_frame=per_frame, enc_width=encoder_width(args.arch))


def _epochs(args: argparse.Namespace) -> int:
    """--epochs, or those of --preset (default medium). With --time they are a first plan that only sets how
    the stages share the epochs; the timing probe then plans them (_plan_time)."""
    return args.epochs if args.epochs is not None else PRESETS[args.preset or DEFAULT_PRESET]


def _fit_config(args: argparse.Namespace):
    from .fit import FitConfig

    return FitConfig(epochs=_epochs(args), lr=args.lr, batch_size=args.batch_size, loss=args.loss, seed=args.seed,
                     checkpoint_minutes=args.checkpoint_minutes)


def cmd_fit(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import numpy as np
    import torch

    from .fit import fit
    from .models.dnerv import count_params, decoder_params
    from .outputs import write_bytes_atomic, write_file_atomic

    run = Path(args.output)
    _check_fit_output(args)
    _check_run_dir(args, run)
    video = _read(args)
    T, H, W, _ = video.frames.shape
    sizing = _sizing(args, T, H, W)
    fit_cfg = _fit_config(args)
    dec = sizing.config.decoder
    print(
        f"{plural(T, 'frame')} {H}x{W}; budget {sizing.budget} values, model stores {sizing.stored} "
        f"(decoder {decoder_params(dec)}, embeddings {sizing.stored - decoder_params(dec)}); "
        f"strides {list(dec.strides)}, diff {'off' if not dec.diff_ch else f'1/{dec.diff_stride}'}",
        file=sys.stderr,
    )
    fit_cfg = _plan_fit(args, fit_cfg, video.frames, sizing.config, run)
    _start_run(args, run)
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
        "fit": replace(fit_cfg, epochs=result.epochs).to_dict(),
        "psnr": result.psnr,
        "seconds": result.seconds,
        "history": result.history,
    }
    write_bytes_atomic(run / RUN_REPORT, json.dumps(report, indent=1).encode(), args.overwrite)
    write_file_atomic(run / RUN_FRAMES_CSV, lambda tmp: np.savetxt(
        tmp, np.c_[np.arange(T), result.per_frame_psnr], fmt=["%d", "%.4f"], delimiter=",",
        header="frame,psnr_db", comments=""), args.overwrite)
    print(f"PSNR {result.psnr:.2f} dB after {plural(result.epochs, 'epoch')} in {duration(result.seconds)}; "
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
    import time

    from .codec import decode
    from .metrics import psnr
    from .outputs import run_folder, write_bytes_atomic

    _check_file_output(args)
    _check_run_dir(args, _run_dir(args))
    with run_folder(_run_dir(args), remove_on_success=not args.run_dir) as run_dir:
        report = _encode(args, run_dir)
        write_bytes_atomic(args.output, report.data, args.overwrite)
    T, H, W = report.encoded_frames.shape[:3]
    out = Path(args.output)
    decoded, _ = decode(report.data)
    parts = f" in {len(report.segments)} segments" if len(report.segments) > 1 else ""
    quality = psnr(report.encoded_frames, decoded)
    pruned = f", after pruning {report.psnr_pruned:.2f} dB" if report.psnr_pruned is not None else ""
    if report.predicted_bits is not None:
        pruned += (f", rate-distortion tuned {report.psnr_qat[0]:.2f} -> {report.psnr_qat[1]:.2f} dB, "
                   f"predicted {report.predicted_bits / 8:.0f} bytes")
    elif report.psnr_qat is not None:
        pruned += f", {args.bits}-bit {report.psnr_qat[0]:.2f} -> {report.psnr_qat[1]:.2f} dB by QAT"
    against = f" against the {args.denoise}-denoised input" if args.denoise != "none" else ""
    coded = f" (coded {report.coded_size[0]}x{report.coded_size[1]})" if report.coded_size else ""
    budget = f"; {duration(time.time() - args.started)} of --time {duration(args.time)}" if args.time else ""
    print(f"{out}: {len(report.data)} bytes, {report.bpp:.4f} bpp, PSNR {quality:.2f} dB decoded{against} "
          f"(float model {report.psnr_fit:.2f} dB{pruned}); {plural(T, 'frame')} {H}x{W}{coded}, "
          f"encode {duration(report.seconds)}{parts}{budget}")
    return 0


def _encode(args: argparse.Namespace, run_dir: Path):
    from dataclasses import replace

    from .codec import EncodeConfig, encode_video
    from .runners import make_runner
    from .segments import segment_plans

    video = _read(args)
    T, H, W, _ = video.frames.shape
    fit_epochs, rd_options = _rd_plan(args)
    fit_cfg = replace(_fit_config(args), epochs=fit_epochs)
    prune_epochs = args.prune_epochs if args.prune_epochs is not None else max(1, _epochs(args) // 5)
    cfg = EncodeConfig(
        resolution=video.frames.shape[1:3], start=args.start, num_frames=T, size=args.size,
        bpp=args.bpp if args.bpp is not None else 0.1, use_diff=not args.no_diff, diff_stride=args.diff_stride,
        arch=args.arch, fit=fit_cfg, prune=args.prune, prune_epochs=prune_epochs if args.prune > 0 else 0, bits=args.bits,
        qat_epochs=args.qat_epochs, qat_lr=args.qat_lr, **rd_options,
        device=args.device, denoise=args.denoise, denoise_sigma=args.sigma, denoise_iters=args.denoise_iters,
        segment_frames=args.segment_frames, threads=args.threads,
    )
    plans = segment_plans(cfg, T, H, W)
    notes = dict.fromkeys(note for plan in plans for note in plan.notes)
    for note in notes:  # said before the fit starts, not after it
        print(f"dnerv {args.command}: note: {note}", file=sys.stderr)
    cfg = _plan_encode_time(args, cfg, video.frames, plans[0], run_dir)
    _start_run(args, run_dir)
    return encode_video(video, cfg, run_dir, args.resume, not args.quiet, runner=make_runner(args.workers, args.ray))


STAGE_WORDS = {"fit": "fit", "prune": "pruning", "rd": "rate-distortion", "qat": "QAT"}
PROBE_FRAMES = 8  # the timing probe cycles over this many frames: their content does not change a step's time


def _plan_encode_time(args: argparse.Namespace, cfg, frames, plan, run_dir: Path):
    """The encode's training stages timed and planned (_plan_time); `cfg` with the epochs planned under --time."""
    from dataclasses import replace

    from .codec import encode_stages
    from .models.padding import pad_frames

    epochs = {"fit": cfg.fit.epochs, "prune": cfg.prune_epochs, "rd": cfg.rd_epochs, "qat": cfg.qat_epochs}
    stages = [(name, epochs[name]) for name in encode_stages(cfg) if name in epochs]
    probe = pad_frames(frames[:PROBE_FRAMES], plan.coded)
    planned, budget = _plan_time(args, stages, frames.shape[0], probe, plan.sizing.config, cfg.fit, run_dir)
    epochs.update(planned)
    return replace(cfg, fit=replace(cfg.fit, epochs=epochs["fit"], time=budget), prune_epochs=epochs["prune"],
                   rd_epochs=epochs["rd"], qat_epochs=epochs["qat"])


def _plan_fit(args: argparse.Namespace, fit_cfg, frames, model_cfg, run_dir: Path):
    """`dnerv fit`'s one stage timed and planned (_plan_time); `fit_cfg` with the epochs planned under --time."""
    from dataclasses import replace

    from .timeplan import FIT_ONLY_AFTER

    planned, budget = _plan_time(args, [("fit", fit_cfg.epochs)], frames.shape[0], frames[:PROBE_FRAMES], model_cfg,
                                 fit_cfg, run_dir, after_fit=FIT_ONLY_AFTER)
    return replace(fit_cfg, epochs=planned["fit"], time=budget)


def _plan_time(args: argparse.Namespace, stages: list[tuple[str, int]], num_frames: int, probe_frames, model_cfg,
               fit_cfg, run_dir: Path, after_fit: float | None = None):
    """Time a few training steps of the model on the real frames, then plan: with --time, the epochs of every
    stage (in the proportions `stages` gives them) that end the command within the budget, and the TimeBudget
    the training loops re-plan with; without, the estimate of how long the run will take. A run expected to
    take over an hour, or that cannot fit its --time, says so before it starts.
    Returns ({stage: epochs}, TimeBudget or None)."""
    import math
    import time

    from .checkpoint import recorded_seconds
    from .fit import step_seconds
    from .timeplan import TimeBudget, stage, work_seconds

    first = stages[0][1]
    plan = [stage(name, n / first, after_fit if i == 0 else None) for i, (name, n) in enumerate(stages)]
    epoch_seconds = (step_seconds(probe_frames, model_cfg, fit_cfg, args.device)
                     * math.ceil(num_frames / fit_cfg.batch_size))
    epochs, budget, now = [n for _, n in stages], None, time.time()
    if args.time is not None:
        spent = recorded_seconds(run_dir) if args.resume else 0.0  # work the checkpoints record counts
        budget = TimeBudget(args.time, args.started + args.time - spent - EXIT_SECONDS, tuple(plan))
        epochs = list(budget.plan(plan[0].name, epoch_seconds, 0.0, now))
    work = work_seconds(epochs, [epoch_seconds * st.cost for st in plan], [st.after for st in plan])
    expected = now - args.started + work + EXIT_SECONDS
    note = _time_note(args, [(st.name, n) for st, n in zip(plan, epochs)], epoch_seconds, expected)
    if note:
        print(f"dnerv {args.command}: note: {note}", file=sys.stderr)
    return dict(zip([name for name, _ in stages], epochs)), budget


def _time_note(args: argparse.Namespace, epochs: list[tuple[str, int]], epoch_seconds: float,
               expected: float) -> str | None:
    """One line about the time a run will take: the plan under --time (or that it cannot be met), and, for a
    run expected to take over an hour, the estimate and what shortens it."""
    counts = " + ".join(f"{n} {STAGE_WORDS[name]}" for name, n in epochs) + " epochs"
    pace = f"{duration(epoch_seconds)} a fit epoch"
    long = expected > LONG_RUN_SECONDS
    if args.time is not None:
        if expected > 1.1 * args.time:
            return (f"--time {duration(args.time)} is too short for this clip: the least work, {counts} at {pace}, "
                    f"takes about {duration(expected)}; a smaller --resolution or fewer --frames shortens it")
        line = f"--time {duration(args.time)}: {counts} at {pace}, re-planned as the run goes"
        if long:
            line += (f"; about {duration(expected)} in all: a smaller --time, --resolution or fewer --frames "
                     "shortens it")
        return line
    if long:
        return (f"this {args.command} will take about {duration(expected)} ({counts} at {pace}): --time (e.g. "
                "--time 1h), fewer --epochs (--preset fast), a smaller --resolution or fewer --frames shortens it")
    return None


def _rd_plan(args: argparse.Namespace) -> tuple[int, dict]:
    """(fit epochs, rate-distortion settings). By default a fifth of --epochs goes to the rate-distortion
    stage, so an encode takes about the time the fit alone took; asking for --bits or QAT means the
    min/max-quantization pipeline, and fewer than 5 epochs leave no stage."""
    if args.rd_epochs is not None:
        fit_epochs, rd = _epochs(args), args.rd_epochs
    elif args.qat_epochs > 0 or args.bits != 8:
        fit_epochs, rd = _epochs(args), 0
    else:
        rd = _epochs(args) // RD_SHARE
        fit_epochs = _epochs(args) - rd
    options = {"rd_epochs": rd, "rd_lambda": args.rd_lambda,
               "value_bits": args.value_bits if args.value_bits is not None else RD_VALUE_BITS}
    return fit_epochs, options


def _run_dir(args: argparse.Namespace) -> Path:
    """--run-dir (always kept), or OUTPUT.run beside the output (removed after success if this program made it)."""
    out = Path(args.output)
    return Path(args.run_dir) if args.run_dir else out.with_name(out.name + ".run")


def _check_run_dir(args: argparse.Namespace, run_dir: Path) -> None:
    """Before any reading: refuse to run over an earlier run's checkpoint unless told (--resume/--restart)."""
    from .checkpoint import check_run_dir

    note = check_run_dir(run_dir, args.resume, args.restart)
    if note:
        print(f"dnerv {args.command}: note: {note}", file=sys.stderr)


def _start_run(args: argparse.Namespace, run_dir: Path) -> None:
    """Once the input has been read: --restart discards the old checkpoints, so no stage resumes from them."""
    from .checkpoint import discard_checkpoints

    if args.restart:
        discard_checkpoints(run_dir)


def _estimated_sigma(frames, method: str) -> float:
    """The default path of `dnerv denoise`: the noise level estimated from the clip, said before the long run."""
    from .denoise.noise import estimate_noise

    est = estimate_noise(frames)
    use = "vdp fits without it" if method == "vdp" else "--sigma overrides it"
    print(f"noise level estimated from the clip: {est.describe()}; {use}", flush=True)
    return est.sigma


def cmd_denoise(args: argparse.Namespace) -> int:
    import time

    from .codec import denoiser_for
    from .outputs import run_folder
    from .video import check_output_path, write_video

    check_output_path(args.output, args.overwrite)
    _check_run_dir(args, _run_dir(args))
    t0 = time.perf_counter()
    with run_folder(_run_dir(args), remove_on_success=not args.run_dir) as run_dir:
        video = _read(args)
        _start_run(args, run_dir)
        denoiser = denoiser_for(args.method, args.seed, args.device, args.iters)
        sigma = args.sigma if args.sigma is not None else _estimated_sigma(video.frames, args.method)
        clean = denoiser.denoise(video.frames, sigma, not args.quiet, run_dir=run_dir, resume=args.resume)
        path = write_video(args.output, clean, video.rate, args.overwrite)
    print(f"{path}: {plural(clean.shape[0], 'frame')} {clean.shape[1]}x{clean.shape[2]} denoised by {args.method} "
          f"in {duration(time.perf_counter() - t0)}")
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
    frames, header = decode(args.input, args.start, args.frames, args.device, _limits(args))
    shape = f"{plural(frames.shape[0], 'frame')} {frames.shape[1]}x{frames.shape[2]}"
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

    info = describe(Path(args.input), _limits(args))
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
    try:
        return rd_main(rest)
    except SystemExit as e:  # its --help, or a bad option (already reported on one line)
        return e.code if isinstance(e.code, int) else 0


COMMANDS = {"fit": cmd_fit, "encode": cmd_encode, "decode": cmd_decode, "info": cmd_info, "denoise": cmd_denoise}


OOM_HINTS = {"decode": "lower --max-decode-memory (smaller batches) or decode fewer --frames"}


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or torch's allocation failure (a RuntimeError: "out of memory", "can't allocate memory")."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate" in text))


def main(argv: list[str] | None = None) -> int:
    import time

    started = time.time()  # a --time budget counts from here
    argv = sys.argv[1:] if argv is None else argv
    skip = 1 if argv[:1] == ["--debug"] else 0
    if argv[skip : skip + 1] == ["bench"]:
        return cmd_bench(argv[skip + 1 :])
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # named by the subcommand, whose --help lists what it takes
            args._commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
        check_combinations(args)
        args.started = started
    except SystemExit as e:  # --help, --version, or a bad option (already reported on one line)
        return e.code if isinstance(e.code, int) else 0
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
