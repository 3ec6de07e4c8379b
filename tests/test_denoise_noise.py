"""Synthetic noise (AWGN, Poisson-Gaussian) and the blind noise-level estimates."""

from __future__ import annotations

import numpy as np
import pytest

from dnervcodec.denoise.noise import (POISSON_GAUSSIAN, PoissonGaussian, add_awgn, estimate_noise, estimate_sigma,
                                      poisson_gaussian)
from dnervcodec.errors import ConfigError, InputError


def _smooth_clip(t: int = 4, h: int = 96, w: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([90 + 40 * np.sin(xx / 23 + k), 110 + 30 * np.cos(yy / 17), 100 + 0.3 * xx], -1)
              for k in range(t)]
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


def _ramp_clip(t: int = 4, h: int = 96, w: int = 160) -> np.ndarray:
    """Smooth ramps over most of the 0-255 range, so that a signal-dependent level is identifiable."""
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([20 + 210 * xx / w, 30 + 190 * yy / h, 128 + 90 * np.sin(xx / 31 + yy / 29 + k)], -1)
              for k in range(t)]
    return np.clip(np.rint(np.stack(frames)), 0, 255).astype(np.uint8)


def test_awgn_is_deterministic_and_seeded() -> None:
    clean = _smooth_clip()
    a, b, c = add_awgn(clean, 20, seed=3), add_awgn(clean, 20, seed=3), add_awgn(clean, 20, seed=4)
    assert a.dtype == np.uint8 and a.shape == clean.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(np.std(a.astype(float) - clean) - 20) < 1.0


@pytest.mark.parametrize("sigma", [15.0, 30.0])
def test_estimate_sigma_recovers_the_noise_level(sigma: float) -> None:
    noisy = add_awgn(_smooth_clip(), sigma, seed=0)
    assert abs(estimate_sigma(noisy) - sigma) < 0.15 * sigma


def test_clean_clip_estimates_low_noise_and_bad_inputs_raise() -> None:
    assert estimate_sigma(_smooth_clip()) < 2.0
    with pytest.raises(ConfigError):
        add_awgn(_smooth_clip(), -1.0)
    with pytest.raises(InputError, match="uint8"):
        estimate_sigma(_smooth_clip().astype(np.float32))


def test_poisson_gaussian_variance_grows_with_intensity_and_is_seeded() -> None:
    model = PoissonGaussian(gain=4.0, read=5.0)
    levels = np.array([16, 64, 128, 192], dtype=np.uint8)
    clean = np.broadcast_to(levels.reshape(1, 4, 1, 1), (2, 4, 2000, 3)).copy()
    noisy = model.apply(clean, seed=1)
    assert noisy.dtype == np.uint8 and np.array_equal(noisy, model.apply(clean, seed=1))
    assert not np.array_equal(noisy, model.apply(clean, seed=2))
    residual = noisy.astype(float) - clean
    for k, level in enumerate(levels):  # variance = gain * x + read^2 (none of these levels clips)
        std = residual[:, k].std()
        assert std == pytest.approx(model.sigma_at(float(level)), rel=0.05), (level, std)
        assert abs(residual[:, k].mean()) < 0.5  # unbiased
    # clipped like a sensor: a white clip cannot get brighter
    white = np.full((1, 8, 8, 3), 255, np.uint8)
    assert model.apply(white).max() == 255 and model.apply(white).mean() < 255


def test_named_strengths_bracket_awgn_20_to_25_at_mid_grey() -> None:
    sigmas = [poisson_gaussian(name).sigma_at(128) for name in ("weak", "middle", "strong")]
    assert sigmas == sorted(sigmas) and 20 <= sigmas[1] <= 25
    assert set(POISSON_GAUSSIAN) == {"weak", "middle", "strong"}
    with pytest.raises(ConfigError, match="strength"):
        poisson_gaussian("medium")
    with pytest.raises(ConfigError, match="gain"):
        PoissonGaussian(gain=-1.0, read=2.0)


@pytest.mark.parametrize("name", ["weak", "middle", "strong"])
def test_estimate_noise_recovers_poisson_gaussian(name: str) -> None:
    clean = _ramp_clip()
    model = poisson_gaussian(name)
    est = estimate_noise(model.apply(clean, seed=0))
    assert est.bins >= 8
    assert est.sigma == pytest.approx(model.effective_sigma(clean), rel=0.1)
    assert est.gain == pytest.approx(model.gain, rel=0.3)
    assert est.read == pytest.approx(model.read, abs=3.0)
    # the single-sigma MAD estimate cannot see that the level depends on the signal
    assert "x intensity" in est.describe()


@pytest.mark.parametrize("sigma", [15.0, 30.0])
def test_estimate_noise_on_white_noise_finds_no_shot_noise(sigma: float) -> None:
    est = estimate_noise(add_awgn(_ramp_clip(), sigma, seed=0))
    assert est.sigma == pytest.approx(sigma, rel=0.1)
    assert est.gain < 0.15 * sigma**2 / 128  # shot noise under 15% of the variance at mid-grey


def test_estimate_noise_on_flat_or_clean_clips() -> None:
    assert estimate_noise(_smooth_clip()).sigma < 2.5
    flat = np.full((2, 32, 32, 3), 100, np.uint8)
    est = estimate_noise(add_awgn(flat, 10, seed=0))  # one intensity: no line to fit, one MAD estimate
    assert est.bins == 0 and est.gain == 0 and est.sigma == pytest.approx(10, rel=0.15)
