"""Affine quantization: round trips, per-channel choices, degenerate channels, and the straight-through estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnervcodec.compress.quant import (
    QuantParams,
    dequantize,
    fake_quantize,
    half,
    quantization_mse,
    quantize,
    quantize_embedding,
    quantize_weight,
)
from dnervcodec.errors import ConfigError


def _bshape(params: QuantParams) -> tuple[int, ...]:
    if params.axis is None:
        return (1,) * len(params.shape)
    return tuple(-1 if d == params.axis else 1 for d in range(len(params.shape)))


@pytest.mark.parametrize("bits", [2, 4, 8, 12, 16])
@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_round_trip_error_within_half_step(bits: int, axis: int | None) -> None:
    rng = np.random.default_rng(bits)
    x = (rng.normal(size=(6, 5, 4)) * rng.uniform(0.01, 10, size=(6, 1, 1))).astype(np.float32)
    symbols, params = quantize(x, bits, axis)
    assert symbols.dtype == np.int32 and symbols.shape == (x.size,)
    assert symbols.min() >= 0 and symbols.max() < 2**bits
    assert params.scale.dtype == np.float32 and params.offset.dtype == np.float32
    y = dequantize(symbols, params)
    assert y.dtype == np.float32 and y.shape == x.shape
    half = params.scale.reshape(_bshape(params)) / 2
    tol = 1e-6 * np.abs(x).max()  # float32 rounding of symbol*scale+offset
    assert (np.abs(y - x) <= half + tol).all()


def test_extremes_are_exact_enough_and_symbols_are_c_order() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    symbols, params = quantize(x, 8, None)
    assert symbols[0] == 0 and symbols[-1] == 255
    assert (np.diff(symbols) >= 0).all()  # C-order flattening of an increasing array
    assert np.allclose(dequantize(symbols, params), x, atol=params.scale[0] / 2 + 1e-6)


def test_constant_channels_do_not_divide_by_zero() -> None:
    x = np.ones((3, 4), np.float32)
    x[1] = np.linspace(-1, 1, 4)
    x[2] = -7.25
    with np.errstate(all="raise"):
        symbols, params = quantize(x, 8, 0)
        y = dequantize(symbols, params)
    assert params.scale[0] == 0 and params.scale[2] == 0 and params.scale[1] > 0
    assert np.array_equal(y[0], x[0]) and np.array_equal(y[2], x[2])
    s2, p2 = quantize(np.full((5,), 3.5, np.float32), 8, None)
    assert (s2 == 0).all() and np.array_equal(dequantize(s2, p2), np.full((5,), 3.5, np.float32))


@pytest.mark.parametrize("bits", [0, 1, 17, 8.0, True])
def test_bad_bits_raise_config_error(bits: object) -> None:
    with pytest.raises(ConfigError):
        quantize(np.zeros(4, np.float32), bits, None)  # type: ignore[arg-type]


def test_bad_axis_and_bad_values_raise_config_error() -> None:
    with pytest.raises(ConfigError):
        quantize(np.zeros((2, 2), np.float32), 8, 2)
    with pytest.raises(ConfigError):
        quantize(np.array([1.0, np.nan], np.float32), 8, None)
    with pytest.raises(ConfigError):
        quantize(np.zeros(0, np.float32), 8, None)


def test_quantize_weight_axis_choice() -> None:
    rng = np.random.default_rng(0)
    _, p = quantize_weight(rng.normal(size=(8, 4, 3, 3)).astype(np.float32))
    assert p.axis == 0 and p.scale.shape == (8,) and p.bits == 8
    _, p = quantize_weight(rng.normal(size=(8,)).astype(np.float32))
    assert p.axis is None and p.scale.shape == (1,)


def test_quantize_embedding_prefers_per_channel_for_large_mismatched_channels() -> None:
    rng = np.random.default_rng(1)
    e = rng.normal(size=(16, 8, 9, 16)).astype(np.float32)
    e *= np.logspace(-2, 1, 8, dtype=np.float32).reshape(1, 8, 1, 1)
    symbols, params = quantize_embedding(e, 8)
    assert params.axis == 1 and params.scale.shape == (8,)
    pt = quantize(e, 8, None)
    assert quantization_mse(e, symbols, params) < quantization_mse(e, *pt)


def test_quantize_embedding_keeps_per_tensor_when_side_info_is_not_small() -> None:
    rng = np.random.default_rng(2)
    e = rng.normal(size=(1, 32, 2, 2)).astype(np.float32)  # 128 values: 31*64 bits >> 1% of 1024 bits
    e *= np.logspace(-2, 1, 32, dtype=np.float32).reshape(1, 32, 1, 1)
    _, params = quantize_embedding(e, 8)
    assert params.axis is None
    _, params = quantize_embedding(rng.normal(size=(16, 100)).astype(np.float32), 8)  # not [T,C,h,w]
    assert params.axis is None


def test_quantize_embedding_keeps_per_tensor_when_mse_is_not_lower() -> None:
    e = np.zeros((16, 4, 8, 8), np.float32)
    e[:, :, 0, 0] = -1.0  # every channel spans exactly [-1, 1] with the same grid: per-channel gains nothing
    e[:, :, 0, 1] = 1.0
    _, params = quantize_embedding(e, 8)
    assert params.axis is None


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_fake_quantize_forward_matches_numpy_and_gradient_is_identity(axis: int | None) -> None:
    torch.manual_seed(0)
    x = (torch.randn(6, 5, 3) * torch.linspace(0.1, 3, 6).view(6, 1, 1)).requires_grad_(True)
    y = fake_quantize(x, 8, axis)
    symbols, params = quantize(x.detach().numpy(), 8, axis)
    ref = dequantize(symbols, params)
    step = float(params.scale.max())
    assert np.array_equal(y.detach().numpy(), ref.reshape(y.shape))  # bit for bit what the file will hold
    assert (y.detach() - x.detach()).abs().max() <= step / 2 + 1e-6
    g = torch.randn_like(x)
    y.backward(g)
    assert x.grad is not None and torch.equal(x.grad, g)


@pytest.mark.parametrize("bits", [3, 5, 8])
def test_fake_quantize_agrees_with_the_file_on_rounding_ties(bits: int) -> None:
    """Values whose (x - offset) / scale is a tie (k + 0.5) in one precision and not the other must still
    round as the encoder rounds them (one flipped symbol moved a 5-bit embedding value by a whole step)."""
    rng = np.random.default_rng(bits)
    base = rng.normal(0, 1, 4000).astype(np.float32)
    _, params = quantize(base, bits, None)
    scale, offset = np.float64(params.scale[0]), np.float64(params.offset[0])
    ties = (offset + (rng.integers(0, (1 << bits) - 1, 400) + 0.5) * scale).astype(np.float32)
    near = np.nextafter(ties, np.float32(np.inf))
    x = np.concatenate([base, ties, near, [base.min(), base.max()]]).astype(np.float32)
    symbols, p = quantize(x, bits, None)
    y = fake_quantize(torch.from_numpy(x), bits, None).numpy()
    assert np.array_equal(y, dequantize(symbols, p))


def test_fake_quantize_constant_tensor_is_finite() -> None:
    x = torch.full((4, 3), 2.0, requires_grad=True)
    y = fake_quantize(x, 8, 0)
    assert torch.equal(y.detach(), x.detach())
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_half_rounds_to_float16_as_asked() -> None:
    """The one float16 rounding of quantization and entropy models: nearest, directed, or kept in a range."""
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0, 3, 2000), rng.uniform(0, 1e-7, 50), [0.0, 1.0, 65504.0, 1e-9]])
    for kw in ({}, {"up": True}, {"down": True}, {"lo": -1.0, "hi": 1.0}):
        h = half(v, **kw, dtype=np.float64)
        assert h.dtype == np.float64 and np.array_equal(h, h.astype(np.float16).astype(np.float64))
    nearest = half(v)
    assert nearest.dtype == np.float32 and np.array_equal(nearest, v.astype(np.float16).astype(np.float32))
    assert (half(v, up=True) >= v).all() and (half(v, down=True) <= v).all()
    assert (half(v, up=True)[v > 0] > 0).all()  # a positive scale never becomes the constant-channel 0
    inside = half(v, lo=-1.0, hi=1.0)
    assert ((inside >= -1) | (v < -1)).all() and ((inside <= 1) | (v > 1)).all()
    edge = half(np.array([0.99995, 0.33335]), lo=0.3333, hi=0.9999, dtype=np.float64)  # nearest: 1.0, 0.33325
    assert edge.tolist() == [float(np.nextafter(np.float16(1), np.float16(0))),
                             float(np.nextafter(np.float16(0.33335), np.float16(1)))]
