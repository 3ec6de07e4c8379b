"""Affine (min/max) quantization of weights and embeddings to small unsigned integers, and back.

A value is stored as an integer symbol in [0, 2**bits) and restored as ``symbol * scale + offset``, with one
(scale, offset) pair per channel along ``axis`` or one pair for the whole tensor. Symbols are what the entropy
coder sees; scale/offset are side information written next to them in the bitstream.

Everything here is numpy in, numpy out, so the bitstream can use it without importing torch. The one torch
function, :func:`fake_quantize`, imports torch lazily; it mirrors :func:`quantize` for quantization-aware
fine-tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - only for type hints
    import torch

MIN_BITS = 2
MAX_BITS = 16
DEFAULT_BITS = 8
# quantize_embedding goes per-channel only if the extra (scale, offset) pairs cost less than this fraction of
# the tensor's raw size at the chosen bit depth.
PER_CHANNEL_SIDE_INFO_FRACTION = 0.01


@dataclass(frozen=True, eq=False)
class QuantParams:
    """How to turn symbols back into values: ``value = symbol * scale + offset`` (broadcast along ``axis``).

    ``scale`` and ``offset`` are float32 arrays of length ``shape[axis]`` (per channel) or 1 (``axis is None``).
    A scale of 0 marks a constant channel: every symbol there is 0 and the value is exactly ``offset``.
    """

    shape: tuple[int, ...]
    bits: int
    axis: int | None
    scale: np.ndarray
    offset: np.ndarray

    def __eq__(self, other: object) -> bool:
        # numpy arrays make the generated dataclass __eq__ ambiguous, so compare them explicitly.
        if not isinstance(other, QuantParams):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.bits == other.bits
            and self.axis == other.axis
            and self.scale.dtype == other.scale.dtype
            and self.offset.dtype == other.offset.dtype
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.offset, other.offset)
        )

    __hash__ = None  # type: ignore[assignment]  # holds arrays: not hashable

    @property
    def levels(self) -> int:
        """Number of symbols, 2**bits."""
        return 1 << self.bits

    @property
    def side_info_bits(self) -> int:
        """Bits the (scale, offset) arrays take in the bitstream (float16 each)."""
        return 16 * (int(self.scale.size) + int(self.offset.size))


def check_bits(bits: int) -> int:
    """Reject bit depths the format cannot hold (a bool is not a bit depth)."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise ConfigError(f"quantization bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return int(bits)


def _normalize_axis(axis: int | None, ndim: int) -> int | None:
    if axis is None:
        return None
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        raise ConfigError(f"quantization axis {axis!r} is out of range for a {ndim}-d tensor")
    return int(axis) % ndim


def _channel_shape(ndim: int, axis: int | None) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel vector along ``axis`` of an ``ndim``-d array."""
    if axis is None:
        return (1,) * ndim if ndim else ()
    return tuple(-1 if d == axis else 1 for d in range(ndim))


def _ranges(x: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (or whole-tensor) min and max as float64 vectors."""
    if axis is None:
        return np.array([x.min()], np.float64), np.array([x.max()], np.float64)
    others = tuple(d for d in range(x.ndim) if d != axis)
    lo = x.min(axis=others) if others else x.copy()
    hi = x.max(axis=others) if others else x.copy()
    return lo.astype(np.float64).reshape(-1), hi.astype(np.float64).reshape(-1)


def half(v: np.ndarray, up: bool = False, down: bool = False, lo: float | None = None, hi: float | None = None,
         dtype: type = np.float32) -> np.ndarray:
    """Values representable in float16 (how the file stores scales, offsets and model parameters), as `dtype`.

    Round to nearest, or direct: offsets round down and scales up, so [offset, offset + scale * (2^bits - 1)]
    still covers the data and the error stays within half a step; with `up` a positive value never rounds to
    zero (a constant channel's mark). `lo`/`hi` step a result that rounding took out of [lo, hi] back inside
    (one float16 step: clip first), for fields the reader checks against a range (entropy-model parameters).
    One function for quantization and entropy models alike, so both store float16 the same way.
    """
    v = np.asarray(v, np.float64)
    h = v.astype(np.float16)
    if up:
        h = np.where((h.astype(np.float64) < v) | ((h == 0) & (v > 0)), np.nextafter(h, np.float16(np.inf)), h)
    if down:
        h = np.where(h.astype(np.float64) > v, np.nextafter(h, np.float16(-np.inf)), h)
    if hi is not None:
        h = np.where(h.astype(np.float64) > hi, np.nextafter(h, np.float16(-np.inf)), h)
    if lo is not None:
        h = np.where(h.astype(np.float64) < lo, np.nextafter(h, np.float16(np.inf)), h)
    return h.astype(dtype)


def quantize(x: np.ndarray, bits: int, axis: int | None) -> tuple[np.ndarray, QuantParams]:
    """Quantize ``x`` with min/max affine ranges; returns (int32 symbols flattened in C order, params).

    The symbols are computed from the scale/offset exactly as stored (float16 values), so that
    dequantize(quantize(x)) is within scale/2 of x everywhere (plus the offset's float16 rounding).
    """
    bits = check_bits(bits)
    x = np.asarray(x)
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ConfigError(f"cannot quantize an array of dtype {x.dtype}")
    if x.size == 0:
        raise ConfigError("cannot quantize an empty tensor")
    axis = _normalize_axis(axis, x.ndim)
    lo, hi = _ranges(x, axis)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ConfigError("tensor has NaN or infinite values (a diverged fit?): lower the learning rate and refit")
    levels = (1 << bits) - 1
    offset = half(lo, down=True)
    scale = half((hi - offset.astype(np.float64)) / levels, up=True)
    if not (np.isfinite(scale).all() and np.isfinite(offset).all()):
        raise ConfigError("tensor values exceed the float16 range of the stored scales and cannot be quantized")
    bshape = _channel_shape(x.ndim, axis)
    safe = np.where(scale > 0, scale, np.float32(1)).astype(np.float64).reshape(bshape)
    q = np.rint((x.astype(np.float64) - offset.astype(np.float64).reshape(bshape)) / safe)
    symbols = np.clip(q, 0, levels).astype(np.int32).reshape(-1)
    params = QuantParams(shape=tuple(int(d) for d in x.shape), bits=bits, axis=axis, scale=scale, offset=offset)
    return symbols, params


def dequantize(symbols: np.ndarray, params: QuantParams) -> np.ndarray:
    """Symbols (any integer array with prod(shape) entries) -> float32 array of ``params.shape``.

    Works in float32 in place so that decoding a tensor allocates the symbols and the output, nothing more.
    """
    symbols = np.asarray(symbols)
    count = math.prod(params.shape)
    if symbols.size != count:
        raise ValueError(f"got {symbols.size} symbols for a tensor of shape {params.shape}")
    out = symbols.reshape(params.shape).astype(np.float32)
    bshape = _channel_shape(len(params.shape), params.axis)
    out *= np.asarray(params.scale, np.float32).reshape(bshape)
    out += np.asarray(params.offset, np.float32).reshape(bshape)
    return out


def quantize_weight(w: np.ndarray, bits: int = DEFAULT_BITS) -> tuple[np.ndarray, QuantParams]:
    """Conv/linear weights per output channel (axis 0), because output channels differ a lot in range;
    1-D tensors (biases, norms) per tensor, where per-element ranges would cost more than the data."""
    w = np.asarray(w)
    return quantize(w, bits, 0 if w.ndim >= 2 else None)


def quantization_mse(x: np.ndarray, symbols: np.ndarray, params: QuantParams) -> float:
    """Mean squared reconstruction error of one quantization of ``x``."""
    err = dequantize(symbols, params).astype(np.float64) - np.asarray(x, np.float64)
    return float(np.mean(err * err))


def quantize_embedding(e: np.ndarray, bits: int = DEFAULT_BITS) -> tuple[np.ndarray, QuantParams]:
    """Embeddings [T, C, h, w]: per tensor, or per channel (axis 1) when that clearly pays.

    Rule: per-channel is chosen only if (a) its reconstruction MSE is strictly lower than per-tensor and
    (b) its extra side information, 2 float32 per extra channel, is under 1% of the tensor's raw size at
    ``bits`` bits per value. (a) keeps quality from ever getting worse; (b) keeps the side-info overhead
    negligible, so the choice cannot cost more than ~1% in rate even when the MSE gain is tiny. Other
    shapes are quantized per tensor.
    """
    e = np.asarray(e)
    per_tensor = quantize(e, bits, None)
    if e.ndim != 4 or e.shape[1] < 2:
        return per_tensor
    extra_bits = 64 * (e.shape[1] - 1)
    if extra_bits >= PER_CHANNEL_SIDE_INFO_FRACTION * e.size * check_bits(bits):
        return per_tensor
    per_channel = quantize(e, bits, 1)
    if quantization_mse(e, *per_channel) < quantization_mse(e, *per_tensor):
        return per_channel
    return per_tensor


def fake_quantize(x: "torch.Tensor", bits: int, axis: int | None) -> "torch.Tensor":
    """Quantize-dequantize in the forward pass, identity in the backward pass (straight-through estimator).

    Used for quantization-aware fine-tuning: the network sees exactly the values the decoder will see, while
    the gradient flows to the float weights unchanged. It repeats :func:`quantize` and :func:`dequantize`
    operation for operation (ranges and float16 scale/offset, symbols rounded in float64, values rebuilt in
    float32), so the result is bit-identical to what the file will hold: a value on a rounding tie, rounded
    one way in float32 and the other in float64, would otherwise flip by a whole step (at 5 bits a step of a
    content embedding can cost one frame several dB).
    """
    import torch

    bits = check_bits(bits)
    axis = _normalize_axis(axis, x.dim())
    levels = (1 << bits) - 1
    with torch.no_grad():
        xd = x.detach()
        if axis is None:
            lo, hi = xd.min().reshape([1] * xd.dim()), xd.max().reshape([1] * xd.dim())
        else:
            others = [d for d in range(xd.dim()) if d != axis]
            lo = xd.amin(dim=others, keepdim=True) if others else xd
            hi = xd.amax(dim=others, keepdim=True) if others else xd
        offset = half(lo.double().cpu().numpy(), down=True)
        scale = half((hi.double().cpu().numpy() - offset.astype(np.float64)) / levels, up=True)
        offset64 = torch.from_numpy(offset.astype(np.float64)).to(xd.device)
        safe64 = torch.from_numpy(np.where(scale > 0, scale, np.float32(1)).astype(np.float64)).to(xd.device)
        symbols = torch.clamp(torch.round((xd.double() - offset64) / safe64), 0, levels)
        q = symbols.float() * torch.from_numpy(scale).to(xd.device) + torch.from_numpy(offset).to(xd.device)
    # q + (x - x) is q exactly with the gradient of x; x + (q - x) would round twice and can miss q by an ulp.
    return q.to(x.dtype) + (x - xd)


MIN_STEP = 2.0**-14  # smallest normal float16: a learned step is kept at or above it
MAX_STEP = 1024.0


def step_bits(symbols_min: int, symbols_max: int) -> int:
    """Fewest bits whose zero-centred range [-2^(b-1), 2^(b-1)) holds every integer in [min, max]."""
    need = max(-int(symbols_min), int(symbols_max) + 1, 1)
    return check_bits(max(MIN_BITS, (need - 1).bit_length() + 1))


def quantize_step(x: np.ndarray, step: np.ndarray, axis: int | None) -> tuple[np.ndarray, QuantParams]:
    """Uniform quantization with a given step per channel (learned by the rate-distortion fit), zero-centred.

    Stored in the same affine form as :func:`quantize`: ``value = symbol * step + offset`` with
    ``offset = -2^(bits-1) * step`` (exact in float16, a power-of-two multiple of the step), so the file
    format and decoder are unchanged. ``bits`` is the fewest that hold the integers ``round(x / step)``.
    """
    x = np.asarray(x, np.float64)
    axis = _normalize_axis(axis, x.ndim)
    step16 = half(np.clip(np.asarray(step, np.float64).reshape(-1), MIN_STEP, MAX_STEP))
    bshape = _channel_shape(x.ndim, axis)
    q = np.rint(x / step16.astype(np.float64).reshape(bshape))
    if not np.isfinite(q).all():
        raise ConfigError("tensor has NaN or infinite values (a diverged fit?): lower the learning rate and refit")
    bits = step_bits(int(q.min()), int(q.max()))
    zero = 1 << (bits - 1)
    offset = (-zero * step16.astype(np.float64)).astype(np.float16).astype(np.float32)
    if not np.isfinite(offset).all():
        raise ConfigError("quantization step too large for the float16 range of the stored offsets")
    symbols = (q + zero).astype(np.int32).reshape(-1)
    params = QuantParams(shape=tuple(int(d) for d in x.shape), bits=bits, axis=axis, scale=step16, offset=offset)
    return symbols, params
