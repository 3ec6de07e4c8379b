"""STBN: the blind-spot property (exact zero gradient to the own noisy pixel) and a tiny end-to-end fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnervcodec.denoise.base import get_denoiser
from dnervcodec.denoise.noise import add_awgn
from dnervcodec.denoise.stbn import STBN, STBNNet
from dnervcodec.errors import CheckpointError, ConfigError, DenoiseInterrupted
from dnervcodec.metrics import psnr
from tests.conftest import InterruptAfter, moving_shapes


def _flows(kind: str, t: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "zero":
        return torch.zeros(1, t, 2, h, w, dtype=torch.float64), torch.zeros(1, t, 2, h, w, dtype=torch.float64)
    # non-trivial: a smooth random field of several pixels plus sub-pixel jitter
    prev = (torch.randn(1, t, 2, 1, 1, generator=gen) * 3 + torch.randn(1, t, 2, h, w, generator=gen)).double()
    nxt = (torch.randn(1, t, 2, 1, 1, generator=gen) * 3 + torch.randn(1, t, 2, h, w, generator=gen)).double()
    return prev, nxt


@pytest.mark.parametrize("flow", ["zero", "random"])
@pytest.mark.parametrize("use_rfe", [False, True])
@pytest.mark.parametrize("warp_mode", ["nearest", "bilinear"])
def test_output_is_blind_to_its_own_noisy_pixel(flow: str, use_rfe: bool, warp_mode: str) -> None:
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    t, h, w = 4, 17, 20
    net = STBNNet(width=8, blocks=2, use_rfe=use_rfe, warp_mode=warp_mode).double()
    x = torch.rand(1, t, 3, h, w, generator=gen, dtype=torch.float64, requires_grad=True)
    prev, nxt = _flows(flow, t, h, w, gen)
    for ti, yi, xi in [(0, 0, 0), (1, 8, 9), (3, 16, 19), (2, 5, 13)]:
        x.grad = None
        net(x, prev, nxt)[0, ti, :, yi, xi].sum().backward()
        g = x.grad[0]
        assert torch.all(g[ti, :, yi, xi] == 0), g[ti, :, yi, xi]
        # the test can fail: the same frame's neighbours and the other frames do matter
        near = g[ti, :, max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2]
        assert near.abs().sum() > 0
        others = torch.cat([g[:ti], g[ti + 1:]])
        assert others.abs().sum() > 0


def test_unmasked_network_would_fail_the_blind_spot_check() -> None:
    torch.manual_seed(0)
    net = STBNNet(width=8, blocks=1, use_rfe=False).double()
    net.encoder.head.mask.fill_(1.0)  # remove the mask: the centre pixel must now leak through
    x = torch.rand(1, 3, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    z = torch.zeros(1, 3, 2, 9, 9, dtype=torch.float64)
    net(x, z, z)[0, 1, :, 4, 4].sum().backward()
    assert x.grad[0, 1, :, 4, 4].abs().sum() > 0


def test_tiny_fit_end_to_end() -> None:
    clean = moving_shapes(8, 32, 64)
    noisy = add_awgn(clean, 30, seed=0)
    model = STBN(width=16, blocks=1, iters=120, refine_iters=10, crop=32, clip_len=4, batch=2, lr=2e-3,
                 seed=0, device="cpu")
    out = model.denoise(noisy, progress=False)
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    assert np.isfinite(model.history).all() and len(model.history) == 130
    assert psnr(out, clean) > psnr(noisy, clean) + 1.0  # measured +5.6 dB (19.0 -> 24.7)


def test_registry_and_bad_options() -> None:
    assert isinstance(get_denoiser("stbn", iters=1), STBN)
    with pytest.raises(ConfigError, match="warp_mode"):
        STBN(warp_mode="bicubic")
    with pytest.raises(ConfigError, match="flow"):
        STBN(flow="raft")
    with pytest.raises(ConfigError, match="bad option"):
        get_denoiser("stbn", widht=3)


@pytest.mark.parametrize("stop_at", [7, 23])  # in the first pass; in the refinement pass
def test_interrupted_run_resumes_to_the_same_output(tmp_path, stop_at: int) -> None:
    noisy = add_awgn(moving_shapes(6, 24, 32), 25, seed=1)
    options = dict(width=8, blocks=1, iters=12, refine_iters=6, crop=16, clip_len=3, seed=3, device="cpu")
    straight = STBN(**options).denoise(noisy, progress=False)
    with pytest.raises(DenoiseInterrupted, match="--resume"):
        STBN(**options).denoise(noisy, progress=InterruptAfter(stop_at), run_dir=tmp_path)
    resumed = STBN(**options)
    out = resumed.denoise(noisy, progress=False, run_dir=tmp_path, resume=True)
    assert np.array_equal(out, straight)
    assert len(resumed.history) == 18
    with pytest.raises(CheckpointError):  # other settings must not pick up this checkpoint
        STBN(**{**options, "iters": 13}).denoise(noisy, progress=False, run_dir=tmp_path, resume=True)
