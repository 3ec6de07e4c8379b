"""Rate-distortion fine-tuning of what a .dnerv file stores: distortion + lambda * (bits of the file).

After the fit, the encoders are dropped and the stored tensors (decoder weights, content and diff
embeddings) are trained directly, each through a uniform quantizer with a *learned step per channel*
(per output channel of a weight, per channel of an embedding, one step for a bias), as in Gomes et al.
(CVPR 2023) and NVRC: the step sizes trade precision against bits where it matters most. The loss is

    MSE(decoded frames) + lambda * R / pixels,

where R is the rate of every stored tensor under a per-channel quantized Laplace, the same model
(:mod:`dnervcodec.compress.models`) the range coder uses, plus the side information. The rounding passes
gradients straight through for the distortion (STE); the rate sees additive uniform noise, the usual
differentiable stand-in for rounding. With a target size, lambda follows the rate: it grows while the
predicted file is larger than the target and shrinks while it is smaller (a dual update per step), so
``--bpp`` keeps meaning the size of the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from .bitstream import group_axes
from .checkpoint import frames_digest, tensors_digest
from .compress.models import laplace_bits, laplace_fit
from .compress.quant import MAX_STEP, MIN_STEP, QuantParams, quantize_step
from .device import resolve_device
from .errors import ConfigError
from .fit import ClipTensor, FitConfig, clip_psnr, train
from .models.dnerv import Decoder
from .progress import Progress
from .qat import quantized_psnr

MIN_LAPLACE_SCALE = 2.0**-6  # in steps, as the coder's smallest scale
QUANT_SIDE_BITS = 32  # float16 step + float16 offset per channel
MODEL_SIDE_BITS = 32  # float16 mean + float16 scale per entropy-model group
TENSOR_HEADER_BITS = 48 + 8 * 48  # model header plus the tensor chunk's name, shape and framing (estimate)
LAMBDA_GAIN = 4.0  # dual step: over a whole fine-tune, log(lambda) moves by this times a persistent log(rate/target)
HARD_RATE_EVERY = 16  # steps between counts of the rounded rate (lambda update and model choice): it costs
                      # as much as a training step's distortion, and moves slowly
TARGET_TOLERANCE = 0.01  # a fine-tune that ends further than this from its target size is rescaled onto it
CALIBRATION_PROBE = 0.1  # log step change whose effect on (MSE, rate) gives the starting lambda


class StepQuantizer(nn.Module):
    """A learned quantization step (per channel along `axis`, or one for the tensor), as float16 values."""

    def __init__(self, value: torch.Tensor, axis: int | None, init_levels: int = 127) -> None:
        super().__init__()
        self.axis = axis
        self.dims = tuple(d for d in range(value.dim()) if d != axis)
        with torch.no_grad():
            v = value.detach().float()
            if axis is None:
                span = (v.max() - v.min()).reshape([1] * v.dim())
            else:
                span = v.amax(dim=self.dims, keepdim=True) - v.amin(dim=self.dims, keepdim=True)
            step = (span / init_levels).clamp(MIN_STEP, MAX_STEP)
        self.log_step = nn.Parameter(step.log())

    def step(self) -> torch.Tensor:
        """The step as the file stores it (float16), with the gradient of the float step."""
        s = self.log_step.clamp(math.log(MIN_STEP), math.log(MAX_STEP)).exp()
        return s + (s.detach().half().float() - s.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x as the decoder will see it: rounded to the step grid (straight-through for x and the step)."""
        step = self.step()
        y = x / step
        return (y + (torch.round(y) - y).detach()) * step

    def bits(self, x: torch.Tensor, noise: torch.Generator | None, per_channel: bool | None = None) -> torch.Tensor:
        """Bits of x's integers as the coder will spend them, side information included, under one quantized
        Laplace per channel (`per_channel` True), one for the whole tensor (False), or the cheaper of the two
        (None: the coder picks the cheapest model, so this is its estimate). Differentiable with additive
        noise drawn from `noise`; on the rounded integers without."""
        y = x / self.step()
        if noise is not None:
            y = y + (torch.rand(y.shape, generator=noise, device=y.device) - 0.5)
        else:
            y = torch.round(y).detach()
        groups = 1 if self.axis is None else int(x.shape[self.axis])
        fixed = groups * QUANT_SIDE_BITS + TENSOR_HEADER_BITS
        if groups == 1 or per_channel is not True:
            shared = laplace_bits(y, *laplace_fit(y, tuple(range(y.dim())), MIN_LAPLACE_SCALE)).sum() + MODEL_SIDE_BITS
            if groups == 1 or per_channel is False:
                return shared + fixed
        channel = laplace_bits(y, *laplace_fit(y, self.dims, MIN_LAPLACE_SCALE)).sum() + groups * MODEL_SIDE_BITS
        return (channel if per_channel else torch.minimum(shared, channel)) + fixed

    @torch.no_grad()
    def prefers_channels(self, x: torch.Tensor) -> bool:
        """Whether the rounded integers cost fewer bits with one model per channel than with one for all."""
        return self.axis is not None and bool(self.bits(x, None, True) < self.bits(x, None, False))


class RDTensors(nn.Module):
    """The decoder and every frame's embeddings, each seen through its learned quantizer, and their rate."""

    def __init__(self, decoder: Decoder, content: np.ndarray, diff: np.ndarray | None) -> None:
        super().__init__()
        self.decoder = decoder
        self.quantized: list[tuple[str, nn.Module, str]] = []  # (stored name, owner module, attribute)
        for mod_name, module in list(decoder.named_modules()):
            for name, p in list(module.named_parameters(recurse=False)):
                axis = group_axes("weight", p.dim())[-1]
                parametrize.register_parametrization(module, name, StepQuantizer(p, axis))
                self.quantized.append((f"w.{mod_name}.{name}".replace("w..", "w."), module, name))
        self.content = nn.Parameter(torch.tensor(content, dtype=torch.float32))
        self.content_q = StepQuantizer(self.content, 1)
        self.diff = None if diff is None else nn.Parameter(torch.tensor(diff, dtype=torch.float32))
        self.diff_q = None if diff is None else StepQuantizer(self.diff, 1)
        self.register_buffer("lam", torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.int64))  # noise seeds: a resumed run draws the same
        # Which model (per channel or shared) each tensor's rate uses while training, from the last hard count.
        self.register_buffer("per_channel", torch.ones(len(self._stored()), dtype=torch.bool))

    def _stored(self) -> list[tuple[str, torch.Tensor, StepQuantizer]]:
        """(name in the file, raw float tensor, its quantizer) for every stored tensor."""
        out = []
        for name, module, attr in self.quantized:
            p = module.parametrizations[attr]
            out.append((name, p.original, p[0]))
        out.append(("e.content", self.content, self.content_q))
        if self.diff is not None:
            out.append(("e.diff", self.diff, self.diff_q))
        return out

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        diff = None if self.diff is None else self.diff_q(self.diff[idx])
        return self.decoder(self.content_q(self.content[idx]), diff)

    def rate_bits(self, noisy: bool = True, seed: int = 0) -> torch.Tensor:
        """Predicted bits of the file's tensors: payload under the rate model plus side information.

        With `noisy`, the differentiable estimate, each tensor under the model `choose_models` picked last,
        its noise a pure function of (seed, step) so runs resume exactly. Without, the rate of the rounded
        integers under the cheaper model for each tensor, as the coder will choose."""
        if not noisy:
            return sum(q.bits(x, None) for _, x, q in self._stored())
        noise = torch.Generator(self.lam.device).manual_seed(seed * 1_000_003 + int(self.steps))
        self.steps += 1
        return sum(q.bits(x, noise, bool(c)) for (_, x, q), c in zip(self._stored(), self.per_channel))

    @torch.no_grad()
    def choose_models(self) -> None:
        """Pick, for each tensor, the model its training rate uses: the one the coder would pick now."""
        for i, (_, x, q) in enumerate(self._stored()):
            self.per_channel[i] = q.prefers_channels(x)

    def quantizer_groups(self) -> list[nn.Parameter]:
        return [q.log_step for _, _, q in self._stored()]

    @torch.no_grad()
    def scale_steps(self, log_factor: float) -> None:
        """Multiply every quantization step by exp(log_factor): coarser (> 0) or finer (< 0) everywhere."""
        for p in self.quantizer_groups():
            p.add_(log_factor)

    @torch.no_grad()
    def export(self) -> dict[str, tuple[np.ndarray, QuantParams, tuple]]:
        """Every stored tensor as (symbols, QuantParams, entropy-model group axes), ready for the bitstream."""
        out = {}
        for name, x, q in self._stored():
            kind = "embedding" if name.startswith("e.") else "weight"
            step = q.step().detach().cpu().numpy().reshape(-1)
            symbols, quant = quantize_step(x.detach().cpu().numpy(), step, q.axis)
            out[name] = (symbols.reshape(quant.shape), quant, group_axes(kind, x.dim()))
        return out


@torch.no_grad()
def meet_target(model: RDTensors, target_bits: float) -> float:
    """Scale every step by one factor (bisection in log space) so the rounded rate meets the target; returns
    log(factor). The rate falls as the steps grow, so this is how a size is met exactly whatever lambda did."""
    lo, hi = -6.0, 6.0
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        model.scale_steps(mid)
        rate = float(model.rate_bits(noisy=False))
        model.scale_steps(-mid)
        lo, hi = (mid, hi) if rate > target_bits else (lo, mid)
    model.scale_steps(hi)  # the rate at hi is at or under the target
    return hi


@torch.no_grad()
def calibrate(model: RDTensors, clip: ClipTensor, target_bits: float, pixels: float) -> float:
    """Start where the controller should end: all steps scaled so the rounded rate meets the target, and
    lambda at which that point is optimal, -dMSE/d(bits per pixel), measured by one small move of all steps.
    (Started at an arbitrary lambda, the controller overshot: files landed 10-30% below target.)"""
    meet_target(model, target_bits)
    mse0, rate0 = _mse_rate(model, clip)
    model.scale_steps(CALIBRATION_PROBE)
    mse1, rate1 = _mse_rate(model, clip)
    model.scale_steps(-CALIBRATION_PROBE)
    slope = (mse1 - mse0) / max((rate0 - rate1) / pixels, 1e-12)
    return float(min(max(slope, 1e-6), 1e3))


def _mse_rate(model: RDTensors, clip: ClipTensor) -> tuple[float, float]:
    """(mean squared error of the quantized model over the clip, rounded rate in bits)."""
    mse = float(np.mean(10.0 ** (-clip_psnr(model, clip) / 10.0)))
    return mse, float(model.rate_bits(noisy=False))


@dataclass(frozen=True)
class RDResult:
    tensors: dict[str, tuple[np.ndarray, QuantParams, tuple]]  # what the file stores, quantized
    psnr_before: float  # quantized forward before the fine-tune (initial steps)
    psnr_after: float  # quantized forward after it: what decoding the file gives
    predicted_bits: float  # the fit's rate estimate of the stored tensors, side information included
    lam: float
    history: list[dict]
    seconds: float


def rd_tune(
    frames: np.ndarray,
    decoder: Decoder,
    content: np.ndarray,
    diff: np.ndarray | None,
    cfg: FitConfig,
    target_bits: float | None,
    lam: float = 0.01,
    step_lr: float = 1e-2,
    device: str | torch.device = "auto",
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | Progress = True,
) -> RDResult:
    """Fine-tune the stored tensors for MSE + lambda * bpp; with `target_bits`, lambda tracks that size.

    The quantization steps learn with their own peak learning rate `step_lr` on the same schedule (they
    live in log space, where a useful move is far larger than a weight's). The decoder is modified in place.
    """
    if cfg.loss != "l2":
        raise ConfigError("rate-distortion fine-tuning minimizes the decoded MSE; use loss l2")
    if target_bits is not None and target_bits <= 0:
        raise ConfigError("the target size leaves no bits for the stored tensors; raise --bpp/--size")
    device = resolve_device(device)
    start = tensors_digest([*decoder.state_dict().values(), content, diff])
    torch.manual_seed(cfg.seed)
    model = RDTensors(decoder.cpu(), content, diff).to(device)
    model.lam.fill_(lam)
    clip = ClipTensor(frames, device)
    pixels = float(np.prod(frames.shape[:3]))
    if target_bits is not None:
        lam = calibrate(model, clip, target_bits, float(np.prod(frames.shape[:3])))
        model.lam.fill_(lam)
    before = quantized_psnr(model, clip)
    steps = set(id(p) for p in model.quantizer_groups())
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in steps], "lr_scale": 1.0},
        {"params": model.quantizer_groups(), "lr_scale": step_lr / cfg.lr},
    ]

    def forward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model(idx), clip.batch(idx, False)[0]

    shown = {"bpp": float("nan")}
    gain = HARD_RATE_EVERY * LAMBDA_GAIN / (cfg.epochs * math.ceil(frames.shape[0] / cfg.batch_size))

    def penalty() -> tuple[torch.Tensor, dict]:
        if int(model.steps) % HARD_RATE_EVERY == 0:  # the rate the file would have now: what lambda steers
            model.choose_models()
            with torch.no_grad():
                hard = float(model.rate_bits(noisy=False))
            if target_bits is not None:
                model.lam.mul_(math.exp(gain * math.log(hard / target_bits)))
            shown["bpp"] = hard / pixels
        bits = model.rate_bits(noisy=True, seed=cfg.seed)
        return model.lam * bits / pixels, dict(shown)

    identity = {"rd_cfg": cfg.identity(), "target_bits": target_bits, "lam0": lam, "step_lr": step_lr,
                "digest": frames_digest(frames), "start": start}

    history, seconds = train(model, forward, frames.shape[0], cfg, device, run_dir, identity, resume,
                             progress, desc="rd", param_groups=groups, penalty=penalty)
    if target_bits is not None:
        # Lambda steers the rate while the weights move, but cannot land it exactly in a finite run (on a short
        # one it drifted 20% under): one common rescaling of the learned steps meets the size the user asked.
        with torch.no_grad():
            off = abs(float(model.rate_bits(noisy=False)) / target_bits - 1.0)
        if off > TARGET_TOLERANCE:
            meet_target(model, target_bits)
    after = quantized_psnr(model, clip)
    with torch.no_grad():
        predicted = float(model.rate_bits(noisy=False))
    return RDResult(model.export(), before, after, predicted, float(model.lam), history, seconds)
