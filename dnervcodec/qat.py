"""Quantization-aware fine-tuning of what a .dnerv file stores: the decoder's weights and the embeddings.

After fitting, the encoders are dropped: the file holds the decoder and the per-frame content and diff
embeddings, each quantized as `bitstream.encode_tensor` will quantize it (weights per output channel, 1-D
tensors per tensor, embeddings per tensor or per channel). Here exactly those tensors are trained, each seen
through `fake_quantize` with the same axes and ranges, so the loss being lowered is the loss of the decoded
video; the rounding passes gradients straight through (STE). The embeddings are free parameters (no encoder
in the loop), because what matters is what the decoder gets from the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from .checkpoint import frames_digest, tensors_digest
from .compress.quant import check_bits, fake_quantize, quantize_embedding
from .device import resolve_device
from .errors import ConfigError
from .fit import ClipTensor, FitConfig, clip_psnr, train
from .models.dnerv import Decoder
from .progress import Progress


class _FakeQuant(nn.Module):
    """A parametrization: the parameter as the decoder will see it after quantization."""

    def __init__(self, bits: int, axis: int | None) -> None:
        super().__init__()
        self.bits, self.axis = bits, axis

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return fake_quantize(value, self.bits, self.axis)


class StoredTensors(nn.Module):
    """The decoder plus the embeddings of every frame, all fake-quantized as the bitstream quantizes them."""

    def __init__(self, decoder: Decoder, content: np.ndarray, diff: np.ndarray | None, bits: int) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        self.decoder = decoder
        for module in list(decoder.modules()):
            for name, p in list(module.named_parameters(recurse=False)):
                parametrize.register_parametrization(module, name, _FakeQuant(self.bits, 0 if p.ndim >= 2 else None))
        # Copies: training must not change the caller's arrays.
        self.content = nn.Parameter(torch.tensor(content, dtype=torch.float32))
        self.diff = None if diff is None else nn.Parameter(torch.tensor(diff, dtype=torch.float32))

    def _quantized(self, embedding: torch.Tensor) -> torch.Tensor:
        """The embedding as the file will hold it: per tensor or per channel, chosen by the encoder's own rule
        on the current values (it can change as they train)."""
        axis = quantize_embedding(embedding.detach().cpu().numpy(), self.bits)[1].axis
        return fake_quantize(embedding, self.bits, axis)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        diff = None if self.diff is None else self._quantized(self.diff)[idx]
        return self.decoder(self._quantized(self.content)[idx], diff)

    def export(self) -> tuple[Decoder, np.ndarray, np.ndarray | None]:
        """The float decoder (parametrizations removed) and embeddings; the bitstream quantizes them next."""
        for module in list(self.decoder.modules()):
            if parametrize.is_parametrized(module):
                for name in list(module.parametrizations.keys()):
                    parametrize.remove_parametrizations(module, name, leave_parametrized=False)
        diff = None if self.diff is None else self.diff.detach().cpu().numpy()
        return self.decoder, self.content.detach().cpu().numpy(), diff


@dataclass(frozen=True)
class QATResult:
    decoder: Decoder
    content: np.ndarray
    diff: np.ndarray | None
    psnr_before: float  # decoded-equivalent PSNR before fine-tuning (fake-quantized forward)
    psnr_after: float
    history: list[dict]
    seconds: float


def quantized_psnr(model: nn.Module, clip: ClipTensor) -> float:
    """Mean per-frame PSNR of a quantized model (frame indices in, frames out): what decoding the file would give."""
    model.eval()
    try:
        return float(clip_psnr(model, clip).mean())
    finally:
        model.train()


def tune_quantized(
    frames: np.ndarray,
    decoder: Decoder,
    content: np.ndarray,
    diff: np.ndarray | None,
    bits: int,
    cfg: FitConfig,
    device: str | torch.device = "auto",
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | Progress = True,
) -> QATResult:
    """Fine-tune decoder and embeddings through the quantizer for cfg.epochs epochs (lr, warmup, seed from cfg).

    The decoder is modified in place; checkpoints go to run_dir like a fit's, and `resume` continues them.
    """
    if cfg.loss != "l2":
        raise ConfigError("quantization-aware fine-tuning minimizes the decoded MSE; use loss l2")
    device = resolve_device(device)
    start = tensors_digest([*decoder.state_dict().values(), content, diff])
    torch.manual_seed(cfg.seed)
    model = StoredTensors(decoder.cpu(), content, diff, bits).to(device)
    clip = ClipTensor(frames, device)
    before = quantized_psnr(model, clip)

    def forward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model(idx), clip.batch(idx, False)[0]

    identity = {"qat_cfg": cfg.identity(), "bits": bits, "digest": frames_digest(frames),
                "start": start}

    history, seconds = train(model, forward, frames.shape[0], cfg, device, run_dir, identity, resume,
                             progress, desc="qat")
    after = quantized_psnr(model, clip)
    decoder, content, diff = model.export()
    return QATResult(decoder, content, diff, before, after, history, seconds)


def qat_config(fit_cfg: FitConfig, epochs: int, lr: float | None = None) -> FitConfig:
    """The fit's settings for a short fine-tune: `epochs`, a tenth of its peak lr, 10% warmup, no clipping change."""
    return replace(fit_cfg, epochs=epochs, lr=lr if lr is not None else fit_cfg.lr / 10, warmup=0.1)
