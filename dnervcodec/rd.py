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
from .fit import ClipTensor, FitConfig, train
from .models.dnerv import Decoder
from .progress import Progress
from .qat import quantized_psnr

MIN_LAPLACE_SCALE = 2.0**-6  # in steps, as the coder's smallest scale
QUANT_SIDE_BITS = 32  # float16 step + float16 offset per channel
MODEL_SIDE_BITS = 32  # float16 mean + float16 scale per entropy-model group
TENSOR_HEADER_BITS = 48 + 8 * 48  # model header plus the tensor chunk's name, shape and framing (estimate)
LAMBDA_RATE = 0.02  # dual step: log(lambda) moves by this times the relative rate error each step


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

    def bits(self, x: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
        """Bits of x's integers as the coder will spend them, side information included: the cheaper of one
        quantized Laplace per channel and one for the whole tensor (the coder picks the cheapest model, so
        this is its estimate). Differentiable with additive noise drawn from `noise`; on the rounded integers
        without."""
        y = x / self.step()
        if noise is not None:
            y = y + (torch.rand(y.shape, generator=noise, device=y.device) - 0.5)
        else:
            y = torch.round(y).detach()
        groups = 1 if self.axis is None else int(x.shape[self.axis])
        fixed = groups * QUANT_SIDE_BITS + TENSOR_HEADER_BITS
        shared = laplace_bits(y, *laplace_fit(y, tuple(range(y.dim())), MIN_LAPLACE_SCALE)).sum() + MODEL_SIDE_BITS
        if groups == 1:
            return shared + fixed
        per_channel = laplace_bits(y, *laplace_fit(y, self.dims, MIN_LAPLACE_SCALE)).sum() + groups * MODEL_SIDE_BITS
        return torch.minimum(shared, per_channel) + fixed


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
        diff = None if self.diff is None else self.diff_q(self.diff)[idx]
        return self.decoder(self.content_q(self.content)[idx], diff)

    def rate_bits(self, noisy: bool = True, seed: int = 0) -> torch.Tensor:
        """Predicted bits of the file's tensors: payload under the rate model plus side information. With
        `noisy`, the differentiable estimate, its noise a pure function of (seed, step) so runs resume exactly."""
        noise = None
        if noisy:
            noise = torch.Generator(self.lam.device).manual_seed(seed * 1_000_003 + int(self.steps))
            self.steps += 1
        return sum(q.bits(x, noise) for _, x, q in self._stored())

    def quantizer_groups(self) -> list[nn.Parameter]:
        return [q.log_step for _, _, q in self._stored()]

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
    before = quantized_psnr(model, clip)
    steps = set(id(p) for p in model.quantizer_groups())
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in steps], "lr_scale": 1.0},
        {"params": model.quantizer_groups(), "lr_scale": step_lr / cfg.lr},
    ]

    def forward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model(idx), clip.batch(idx, False)[0]

    def penalty() -> tuple[torch.Tensor, dict]:
        bits = model.rate_bits(noisy=True, seed=cfg.seed)
        with torch.no_grad():  # the rate the file would have now: what lambda steers and the bar shows
            hard = float(model.rate_bits(noisy=False))
        if target_bits is not None:
            model.lam.mul_(math.exp(LAMBDA_RATE * (hard / target_bits - 1.0)))
        return model.lam * bits / pixels, {"bpp": hard / pixels}

    identity = {"rd_cfg": cfg.identity(), "target_bits": target_bits, "lam0": lam, "step_lr": step_lr,
                "digest": frames_digest(frames), "start": start}

    history, seconds = train(model, forward, frames.shape[0], cfg, device, run_dir, identity, resume,
                             progress, desc="rd", param_groups=groups, penalty=penalty)
    after = quantized_psnr(model, clip)
    with torch.no_grad():
        predicted = float(model.rate_bits(noisy=False))
    return RDResult(model.export(), before, after, predicted, float(model.lam), history, seconds)
