"""Synthetic noise for experiments (AWGN and signal-dependent Poisson-Gaussian sensor noise) and blind
estimates of the noise level for the denoisers that need one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dnervcodec.denoise.base import check_frames
from dnervcodec.errors import ConfigError

# median(|N(0,1)|): turns a median absolute deviation into a standard deviation
_MAD_TO_STD = 0.6744897501960817


def add_awgn(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Add white Gaussian noise of std `sigma` (0-255 scale), rounded and clipped back to uint8.

    Seeded through a numpy Generator so that the same (frames, sigma, seed) always gives the same clip.
    """
    check_frames(frames)
    if not np.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"noise sigma must be a finite number >= 0 on the 0-255 scale, got {sigma}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(frames.shape, dtype=np.float32) * np.float32(sigma)
    return np.clip(np.rint(frames.astype(np.float32) + noise), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class PoissonGaussian:
    """Signal-dependent sensor noise on the 0-255 scale: y = gain * Poisson(x / gain) + N(0, read^2).

    A photon count (shot noise, variance gain * x) plus read noise (std `read`), then rounded and clipped
    to 0-255 like a sensor's output, independently per RGB value. The variance grows with brightness,
    so dark areas are cleaner and bright ones noisier than one AWGN sigma would say.
    """

    gain: float
    read: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.gain) and np.isfinite(self.read)) or self.gain < 0 or self.read < 0:
            raise ConfigError(f"Poisson-Gaussian gain and read noise must be finite and >= 0, got "
                              f"gain={self.gain}, read={self.read}")

    def sigma_at(self, intensity: float | np.ndarray) -> float | np.ndarray:
        """Noise std (0-255) at a clean intensity (0-255), before clipping."""
        return np.sqrt(self.gain * np.maximum(intensity, 0) + self.read**2)

    def effective_sigma(self, clean: np.ndarray) -> float:
        """The std a single-sigma denoiser should be told for this clip: sqrt(mean variance over its values)."""
        return float(np.sqrt(np.mean(self.gain * clean.astype(np.float64) + self.read**2)))

    def apply(self, frames: np.ndarray, seed: int = 0) -> np.ndarray:
        """The noisy uint8 clip; the same (frames, model, seed) always gives the same clip."""
        check_frames(frames)
        rng = np.random.default_rng(seed)
        x = frames.astype(np.float64)
        shot = rng.poisson(x / self.gain) * self.gain if self.gain > 0 else x
        read = rng.standard_normal(frames.shape) * self.read
        return np.clip(np.rint(shot + read), 0, 255).astype(np.uint8)


# Three strengths, named for the bench and the docs. Std at mid-grey (128): weak 12.0, middle 21.2
# (comparable to AWGN sigma 20-25), strong 30.2; at intensity 32 they are 6.9, 12.6 and 18.3.
POISSON_GAUSSIAN = {
    "weak": PoissonGaussian(gain=1.0, read=4.0),
    "middle": PoissonGaussian(gain=3.0, read=8.0),
    "strong": PoissonGaussian(gain=6.0, read=12.0),
}


def poisson_gaussian(strength: str) -> PoissonGaussian:
    """The named strength (weak, middle, strong)."""
    if strength not in POISSON_GAUSSIAN:
        raise ConfigError(f"unknown Poisson-Gaussian strength {strength!r}; choose one of {list(POISSON_GAUSSIAN)}")
    return POISSON_GAUSSIAN[strength]


def _haar(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LL / 2, HH) of one level of the orthonormal 2-D Haar transform: the 2x2 block mean, and the
    diagonal detail band, whose variance is the mean noise variance of the block's four pixels."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    a, b = img[0:h:2, 0:w:2], img[0:h:2, 1:w:2]
    c, d = img[1:h:2, 0:w:2], img[1:h:2, 1:w:2]
    return (a + b + c + d) / 4.0, (a - b - c + d) / 2.0


def _sample_frames(frames: np.ndarray, max_frames: int) -> np.ndarray:
    return np.unique(np.linspace(0, frames.shape[0] - 1, min(max_frames, frames.shape[0])).round().astype(int))


def _bands(frames: np.ndarray, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Block means and diagonal details of every channel of up to `max_frames` evenly spaced frames."""
    means, details = [], []
    for t in _sample_frames(frames, max_frames):
        f = frames[t].astype(np.float64)
        for ch in range(3):
            mean, detail = _haar(f[..., ch])
            means.append(mean.ravel())
            details.append(detail.ravel())
    return np.concatenate(means), np.concatenate(details)


def estimate_sigma(frames: np.ndarray, max_frames: int = 8) -> float:
    """Blind noise std on the 0-255 scale for white Gaussian noise: Donoho's MAD of the wavelet diagonal band.

    sigma = median(|HH|) / 0.6745 per channel and frame, averaged over channels and up to `max_frames`
    evenly spaced frames. Image structure (edges, texture) inflates it slightly; saturated
    (clipped) noise deflates it. Good to ~10% on natural clips with sigma >= 5. For noise whose level
    depends on the signal, `estimate_noise` is the one to use.
    """
    check_frames(frames)
    estimates = []
    for t in _sample_frames(frames, max_frames):
        f = frames[t].astype(np.float64)
        for ch in range(3):
            estimates.append(np.median(np.abs(_haar(f[..., ch])[1])) / _MAD_TO_STD)
    return float(np.mean(estimates))


@dataclass(frozen=True)
class NoiseEstimate:
    """A blind estimate of signal-dependent noise: variance = gain * intensity + read^2 (0-255 scale).

    `sigma` is the effective std over the clip, sqrt(mean variance over its pixels): the one number the
    denoisers take. White Gaussian noise comes out as gain ~ 0 and read ~ sigma.
    """

    gain: float
    read: float
    sigma: float
    bins: int  # intensity bins the fit used (0: too little usable signal, a flat MAD estimate instead)

    def describe(self) -> str:
        return (f"sigma {self.sigma:.1f} on the 0-255 scale (variance {self.gain:.2f} x intensity + "
                f"{self.read:.1f}^2)")


_BINS = 24
_MIN_PER_BIN = 256


def _fit_line(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares y ~ a x + b with a, b >= 0 (an active-set solve of two unknowns)."""
    sw, sx, sy = w.sum(), (w * x).sum(), (w * y).sum()
    sxx, sxy = (w * x * x).sum(), (w * x * y).sum()
    det = sw * sxx - sx * sx
    if det > 1e-9 * sw * sxx:
        a, b = (sw * sxy - sx * sy) / det, (sxx * sy - sx * sxy) / det
        if a >= 0 and b >= 0:
            return float(a), float(b)
    # on the boundary: the better of "no shot noise" and "no read noise"
    flat = (0.0, float(sy / sw))
    slope = (float(sxy / sxx) if sxx > 0 else 0.0, 0.0)
    cost = [float((w * (y - a * x - b) ** 2).sum()) for a, b in (flat, slope)]
    return flat if cost[0] <= cost[1] else slope


def estimate_noise(frames: np.ndarray, max_frames: int = 8) -> NoiseEstimate:
    """Blind estimate of Poisson-Gaussian noise (gain, read noise) and the effective sigma.

    Per 2x2 block of every channel of up to `max_frames` frames: its mean (the local intensity) and its
    Haar diagonal detail (noise plus a little structure). Blocks are binned by intensity into equally
    populated bins; in each bin the noise variance is (median |detail| / 0.6745)^2, which edges and texture
    (a minority of blocks) barely move. Bins within two noise stds of 0 or 255 are left out (clipping
    shrinks their noise). A line variance = gain * intensity + read^2 is fitted through the bins
    (weighted by their size, gain and read^2 >= 0), and sigma = sqrt(mean over blocks of that variance).
    With fewer than two usable bins (a nearly flat or saturated clip) it falls back to one MAD estimate.
    """
    check_frames(frames)
    means, details = _bands(frames, max_frames)
    edges = np.unique(np.quantile(means, np.linspace(0, 1, _BINS + 1)))
    which = np.clip(np.searchsorted(edges, means, side="right") - 1, 0, len(edges) - 2)
    level, var, weight = [], [], []
    for k in range(len(edges) - 1):
        sel = which == k
        n = int(sel.sum())
        if n < _MIN_PER_BIN:
            continue
        mu = float(means[sel].mean())
        v = float((np.median(np.abs(details[sel])) / _MAD_TO_STD) ** 2)
        sd = np.sqrt(v)
        if mu - 2 * sd < 0 or mu + 2 * sd > 255:
            continue
        level.append(mu)
        var.append(v)
        weight.append(n)
    if len(level) < 2:
        v = float((np.median(np.abs(details)) / _MAD_TO_STD) ** 2)
        return NoiseEstimate(gain=0.0, read=float(np.sqrt(v)), sigma=float(np.sqrt(v)), bins=0)
    gain, read2 = _fit_line(np.asarray(level), np.asarray(var), np.asarray(weight, dtype=np.float64))
    sigma = float(np.sqrt(np.mean(gain * np.clip(means, 0, 255) + read2)))
    return NoiseEstimate(gain=gain, read=float(np.sqrt(read2)), sigma=sigma, bins=len(level))
