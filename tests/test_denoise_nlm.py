"""NLM baseline and the denoiser registry."""

from __future__ import annotations

import numpy as np
import pytest

from dnervcodec.denoise.base import Denoiser, denoiser_names, get_denoiser, register_denoiser
from dnervcodec.denoise.nlm import NLMDenoiser, nlm_denoise, tune_nlm
from dnervcodec.denoise.noise import add_awgn
from dnervcodec.errors import ConfigError
from dnervcodec.metrics import psnr
from tests.conftest import moving_shapes


def test_nlm_improves_psnr_and_tune_picks_a_strength() -> None:
    clean = moving_shapes(6, 32, 64)
    noisy = add_awgn(clean, 25, seed=1)
    den = get_denoiser("nlm")
    assert isinstance(den, NLMDenoiser) and isinstance(den, Denoiser)
    out = den.denoise(noisy, progress=False)  # sigma estimated
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    assert psnr(out, clean) > psnr(noisy, clean) + 3
    best, scores = tune_nlm(noisy, clean, [5, 15, 40])
    assert best == max(scores, key=scores.get) and len(scores) == 3
    # tiny clips: the temporal window shrinks instead of failing
    assert nlm_denoise(noisy[:2], h=10).shape == noisy[:2].shape


def test_strength_per_sigma_sets_h_from_the_given_or_estimated_sigma() -> None:
    """A strength tuned on one clip is h / sigma, so it carries over to another clip's noise level."""
    noisy = add_awgn(moving_shapes(3, 24, 32), 20, seed=2)
    out = NLMDenoiser(strength=0.8).denoise(noisy, sigma=25, progress=False)
    assert np.array_equal(out, nlm_denoise(noisy, h=20.0))
    assert not np.array_equal(out, NLMDenoiser().denoise(noisy, sigma=25, progress=False))


def test_registry_names_and_errors() -> None:
    assert {"stbn", "nlm", "vdp"} <= set(denoiser_names())
    with pytest.raises(ConfigError, match="stbn"):
        get_denoiser("bm3d")
    with pytest.raises(ConfigError, match="bad option"):
        get_denoiser("nlm", strenght=3)
    with pytest.raises(ConfigError, match="strength"):
        get_denoiser("nlm", strength=0)
    with pytest.raises(ConfigError):
        nlm_denoise(moving_shapes(2, 8, 8), h=0)

    class Identity:
        name = "identity"

        def denoise(self, frames: np.ndarray, sigma: float | None = None, progress: bool = True) -> np.ndarray:
            return frames

    register_denoiser("identity", Identity)
    assert get_denoiser("identity").name == "identity"
