"""Our codec as a point in the RD benchmark: a real encode to a .dnerv file and a real decode of that file.

Importing this module registers `dnerv` (and the `dnerv-nodiff` ablation) in bench.rd's codec registry.
The swept parameter is the target bpp at the spec's bits per stored value (8 unless given: the budget);
the reported bpp is the file's real size after entropy coding, header included.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from dnervcodec import __version__
from dnervcodec.codec import EncodeConfig, decode, encode_video
from dnervcodec.fit import FitConfig
from dnervcodec.metrics import bpp, ms_ssim, psnr
from dnervcodec.models.cost import decode_cost
from dnervcodec.video import Video, write_bytes_atomic

from .rd import CODEC_REGISTRY, CodecSpec, baseline_seconds, register_codec

QUICK_BUDGETS = (0.04, 0.06, 0.1, 0.2)  # bpp at 8 bits before entropy coding (files land a little below)
QUICK_EPOCHS = 40
# Fit time per pixel and epoch, for bench.rd's time-left estimate: a point of Bunny 160x320, 132 frames took
# about 310 s at 40 epochs on 2 cores (fit, quantize, code, decode, measure).
S_PER_PIXEL_EPOCH = 1.1e-6


def point_seconds(epochs: int, shape: tuple[int, ...], target_bpp: float) -> float:
    """Estimated seconds of one point: every training epoch (fit, pruning fine-tune, QAT) plus a baseline's
    worth of coding and measuring. The budget barely matters: the fit's cost is the frames', not the model's."""
    return S_PER_PIXEL_EPOCH * math.prod(shape[:3]) * epochs + baseline_seconds(shape)


def dnerv_point(base: EncodeConfig, work_dir: Path | None, frames: np.ndarray, fps: float, target_bpp: float,
                reference: np.ndarray | None = None) -> dict:
    """Encode at one budget to a real file, decode that file, and measure (against `reference` if given).

    With a `work_dir` the fit checkpoints into a folder of its own there, so a benchmark that is stopped
    resumes the point instead of refitting it; the folder is removed once the point is measured.
    """
    T, H, W, _ = frames.shape
    ref = frames if reference is None else reference
    cfg = replace(base, bpp=float(target_bpp), size=None)
    run_dir = None if work_dir is None else Path(work_dir) / f"bpp{float(target_bpp):g}-e{cfg.fit.epochs}"
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = encode_video(Video(frames, fps, (H, W)), cfg, run_dir=run_dir, resume=run_dir is not None,
                          progress=False)
    encode_s, encode_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "point.dnerv"
        write_bytes_atomic(path, report.data)
        t0 = time.perf_counter()
        decoded, _ = decode(path)
        decode_s = time.perf_counter() - t0
        size = path.stat().st_size
    if run_dir is not None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "bpp": bpp(size, T, H, W),
        "psnr-rgb": psnr(ref, decoded),
        "ms-ssim-rgb": ms_ssim(ref, decoded),
        "psnr-float": report.psnr_fit,
        "encode_s": encode_s,
        "encode_cpu_s": encode_cpu_s,
        "predicted_bytes": None if report.predicted_bits is None else report.predicted_bits / 8,
        "decode_s": decode_s,
        "bytes": size,
        "stored_values": report.sizing.stored,
        "decode_macs_per_pixel": decode_cost(report.decoder_config).macs / (report.decoder_config.height
                                                                          * report.decoder_config.width),
        "diff_stride": report.sizing.diff_stride,
    }


def dnerv_spec(name: str, epochs: int, budgets=QUICK_BUDGETS, use_diff: bool = True, prune: float = 0.0,
               bits: int = 8, qat_epochs: int = 0, work_dir: Path | None = None, rd_epochs: int = 0,
               value_bits: float = 8.0, arch: str = "dnerv") -> CodecSpec:
    """Our codec at each target bpp (at `bits` bits per stored value); `qat_epochs` > 0 adds the
    quantization-aware fine-tune, which is what makes fewer bits pay (docs/compression.md); `rd_epochs` > 0
    the rate-distortion fine-tune with learned steps, the model sized at `value_bits` per stored value.
    `work_dir` keeps each point's checkpoints so an interrupted sweep resumes (see dnerv_point). `arch` picks
    the encoders (models.dnerv.ARCHITECTURES; "dnerv-paper" is 0.3.0's)."""
    base = EncodeConfig(fit=FitConfig(epochs=epochs), use_diff=use_diff, prune=prune,
                        prune_epochs=max(1, epochs // 5) if prune else 0, bits=bits, qat_epochs=qat_epochs,
                        device="auto", rd_epochs=rd_epochs, value_bits=value_bits, arch=arch)
    qat = f" + {qat_epochs} QAT epochs" if qat_epochs else ""
    quant = f"{bits}-bit{qat}"
    if rd_epochs:
        quant = f"learned steps, {rd_epochs} rate-distortion epochs (model sized at {value_bits:g} bits a value)"
    return CodecSpec(
        name=name,
        param="target_bpp",
        params=tuple(budgets),
        run_point=partial(dnerv_point, base, work_dir),
        description=f"dnervcodec {__version__}: {arch}{'' if use_diff else ' without diff stream'}, {epochs} epochs, "
        f"{quant}, entropy-coded; bpp of the whole .dnerv file",
        meta={"epochs": epochs, "use_diff": use_diff, "prune": prune, "bits": bits, "qat_epochs": qat_epochs,
              "rd_epochs": rd_epochs, "value_bits": value_bits, "arch": arch, "version": __version__},
        seconds=partial(point_seconds, epochs + base.prune_epochs + (rd_epochs or qat_epochs)),
    )


def register(epochs: int = QUICK_EPOCHS, budgets=QUICK_BUDGETS, work_dir: Path | None = None) -> None:
    """Register `dnerv` and `dnerv-nodiff`; with a `work_dir`, each keeps its points' checkpoints in
    work_dir/NAME (bench.rd gives OUT/work), so a stopped sweep resumes its unfinished point."""
    for name, use_diff in (("dnerv", True), ("dnerv-nodiff", False)):
        spec = dnerv_spec(name, epochs, budgets, use_diff, work_dir=None if work_dir is None else work_dir / name)
        register_codec(spec, replace=name in CODEC_REGISTRY)


register()
