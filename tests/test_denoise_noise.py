"""AWGN determinism and the blind noise-level estimate."""

from __future__ import annotations

import numpy as np
import pytest

from dnervcodec.denoise.noise import add_awgn, estimate_sigma
from dnervcodec.errors import ConfigError, InputError


def _smooth_clip(t: int = 4, h: int = 96, w: int = 128) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    frames = [np.stack([90 + 40 * np.sin(xx / 23 + k), 110 + 30 * np.cos(yy / 17), 100 + 0.3 * xx], -1)
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
