import numpy as np
import pytest
import torch

from dnervcodec.metrics import bpp, ms_ssim, ms_ssim_per_frame, psnr, psnr_per_frame


def test_psnr_is_per_frame_then_averaged():
    a = np.zeros((2, 8, 8, 3), np.uint8)
    b = a.copy()
    b[0] += 1  # frame 0: error 1/255 everywhere -> 48.13 dB; frame 1: exact (capped at 100 dB)
    per = psnr_per_frame(a, b)
    assert per[0] == pytest.approx(20 * np.log10(255), abs=1e-9)
    assert per[1] == pytest.approx(100)
    assert psnr(a, b) == pytest.approx(per.mean())


def test_psnr_accepts_float_tensors_in_unit_range():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    assert psnr(x, x + 0.01) == pytest.approx(40.0, abs=1e-6)


def test_ms_ssim_orders_quality():
    rng = np.random.default_rng(0)
    ref = (rng.random((2, 96, 128, 3)) * 255).astype(np.uint8)
    light = np.clip(ref + rng.normal(0, 3, ref.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(ref + rng.normal(0, 30, ref.shape), 0, 255).astype(np.uint8)
    assert ms_ssim(ref, ref) == pytest.approx(1.0)
    assert 1.0 > ms_ssim(ref, light) > ms_ssim(ref, heavy) > 0
    assert ms_ssim_per_frame(ref[:1, :16, :16], light[:1, :16, :16]).shape == (1,)  # tiny frames work


def test_bpp_counts_whole_file_bytes():
    assert bpp(1000, 10, 20, 40) == pytest.approx(1000 * 8 / (10 * 20 * 40))
