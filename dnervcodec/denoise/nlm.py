"""Baseline: OpenCV multi-frame non-local means (fastNlMeansDenoisingColoredMulti).

Each frame is denoised with a temporal window of 5 frames centred on it. OpenCV only accepts a window
centred on the target frame, so near the ends the window is clamped inside the clip by shrinking it
symmetrically (5 -> 3 -> 1 frames for the first/last two frames).
The default strength is h = hColor = 0.6 * sigma (0-255 scale): the best PSNR setting of 0.4-1.2 on
AWGN sigma 15 and 30 on the test clip of moving shapes (`tune_nlm` picks it when a clean clip exists).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from dnervcodec.denoise.base import check_frames
from dnervcodec.denoise.noise import estimate_noise
from dnervcodec.errors import ConfigError
from dnervcodec.metrics import psnr
from dnervcodec.progress import Progress, progress_stage

DEFAULT_STRENGTH_PER_SIGMA = 0.6


def nlm_denoise(frames: np.ndarray, h: float, h_color: float | None = None, temporal_window: int = 5,
                template_window: int = 7, search_window: int = 21, progress: bool | Progress = False) -> np.ndarray:
    """uint8 RGB [T,H,W,3] -> uint8 RGB [T,H,W,3] with strengths h (luma) and h_color (chroma)."""
    check_frames(frames)
    if h <= 0 or (h_color is not None and h_color <= 0):
        raise ConfigError(f"NLM strengths must be > 0, got h={h}, h_color={h_color}")
    for label, value in (("temporal_window", temporal_window), ("template_window", template_window),
                         ("search_window", search_window)):
        if value < 1 or value % 2 == 0:
            raise ConfigError(f"NLM {label} must be a positive odd number, got {value}")
    h_color = h if h_color is None else h_color
    bgr = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR) for f in frames]
    t_count = len(bgr)
    out = np.empty_like(frames)
    with progress_stage(progress, "denoise nlm", t_count) as bar:
        for t in range(t_count):
            out[t] = _nlm_frame(bgr, t, temporal_window, h, h_color, template_window, search_window)
            bar.update(1)
    return out


def _nlm_frame(bgr: list[np.ndarray], t: int, temporal_window: int, h: float, h_color: float,
               template_window: int, search_window: int) -> np.ndarray:
    t_count = len(bgr)
    half = min(temporal_window // 2, t, t_count - 1 - t)
    if half == 0:
        res = cv2.fastNlMeansDenoisingColored(bgr[t], None, h, h_color, template_window, search_window)
    else:
        res = cv2.fastNlMeansDenoisingColoredMulti(bgr[t - half:t + half + 1], half, 2 * half + 1, None,
                                                   h, h_color, template_window, search_window)
    return cv2.cvtColor(res, cv2.COLOR_BGR2RGB)


@dataclass
class NLMDenoiser:
    """Denoiser protocol wrapper; h=None derives the strength from sigma (given or estimated) as
    h = strength * sigma, so a strength tuned on one clip carries over to another clip's noise level."""

    h: float | None = None
    strength: float = DEFAULT_STRENGTH_PER_SIGMA
    h_color: float | None = None
    temporal_window: int = 5
    template_window: int = 7
    search_window: int = 21
    name: str = "nlm"

    def __post_init__(self) -> None:
        if not np.isfinite(self.strength) or self.strength <= 0:
            raise ConfigError(f"NLM strength (h per sigma) must be > 0, got {self.strength}")

    def denoise(self, frames: np.ndarray, sigma: float | None = None, progress: bool | Progress = True,
                run_dir: str | os.PathLike | None = None, resume: bool = False) -> np.ndarray:
        """Non-local means needs no training, so there is nothing to checkpoint: run_dir/resume are ignored."""
        check_frames(frames)
        h = self.h
        if h is None:
            sigma = estimate_noise(frames).sigma if sigma is None else sigma
            h = max(self.strength * float(sigma), 1.0)
        return nlm_denoise(frames, h, self.h_color if self.h_color is not None else h, self.temporal_window,
                           self.template_window, self.search_window, progress)


def tune_strength(noisy: np.ndarray, clean: np.ndarray, strengths: Iterable[float],
                  **options: int) -> tuple[float, dict[float, float]]:
    """Benchmarks only: the strength (h per estimated sigma) with the best PSNR on this clip, and PSNR per
    strength. Tuned on one clip with a clean reference, it is what a user carries over to their own clip,
    whose sigma is estimated the same way (NLMDenoiser(strength=...))."""
    sigma = estimate_noise(noisy).sigma
    scores = {float(k): psnr(nlm_denoise(noisy, max(k * sigma, 1.0), None, **options), clean) for k in strengths}
    if not scores:
        raise ConfigError("tune_strength needs at least one strength to try")
    return max(scores, key=scores.__getitem__), scores


def tune_nlm(noisy: np.ndarray, clean: np.ndarray, strengths: Iterable[float],
             **options: int) -> tuple[float, dict[float, float]]:
    """Benchmarks only (needs the clean clip): the h (= hColor) with the best PSNR, and PSNR per h."""
    scores = {float(s): psnr(nlm_denoise(noisy, float(s), float(s), **options), clean) for s in strengths}
    if not scores:
        raise ConfigError("tune_nlm needs at least one strength to try")
    return max(scores, key=scores.__getitem__), scores
