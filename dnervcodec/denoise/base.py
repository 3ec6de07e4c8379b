"""The pre-encode denoiser interface and a registry, so the CLI and benchmarks pick denoisers by name.

Every denoiser takes and returns uint8 RGB frames [T,H,W,3]; `sigma` is the noise level on the 0-255
scale when the caller knows it (None = the denoiser estimates it or does not need it).
Heavy modules (torch models, OpenCV) are imported lazily, only when their denoiser is requested.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

import numpy as np

from dnervcodec.errors import ConfigError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from dnervcodec.progress import Progress


@runtime_checkable
class Denoiser(Protocol):
    """What `get_denoiser` returns: a named object with one method that denoises a whole clip."""

    name: str

    def denoise(self, frames: np.ndarray, sigma: float | None = None, progress: "bool | Progress" = True,
                run_dir: str | os.PathLike | None = None, resume: bool = False) -> np.ndarray:
        """uint8 [T,H,W,3] noisy RGB frames -> uint8 [T,H,W,3] denoised frames.

        `progress` is a bool (a bar of its own) or a shared Progress line; learned denoisers checkpoint into
        `run_dir` (when given) and continue from there with `resume=True`; others ignore both.
        """
        ...


# name -> "module:attribute" of a class or factory accepting **options. Lazy so that importing the
# registry does not import torch or cv2. Hook for VDP: whoever adds dnervcodec/denoise/vdp.py with a
# class `VDP` gets it registered by this line; until then "vdp" raises a ConfigError saying so.
_BUILTIN: dict[str, str] = {
    "stbn": "dnervcodec.denoise.stbn:STBN",
    "nlm": "dnervcodec.denoise.nlm:NLMDenoiser",
    "vdp": "dnervcodec.denoise.vdp:VDP",
}
_EXTRA: dict[str, Callable[..., Denoiser]] = {}


def register_denoiser(name: str, factory: Callable[..., Denoiser]) -> None:
    """Add (or replace) a denoiser at run time, e.g. from a plugin or a test."""
    _EXTRA[name.lower()] = factory


def denoiser_names() -> list[str]:
    """All names `get_denoiser` accepts, sorted."""
    return sorted(set(_BUILTIN) | set(_EXTRA))


def _resolve(name: str) -> Callable[..., Denoiser]:
    if name in _EXTRA:
        return _EXTRA[name]
    module_name, attr = _BUILTIN[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ConfigError(f"denoiser {name!r} is not available in this version; choose one of "
                              f"{[n for n in denoiser_names() if n != name]}") from exc
        raise
    factory = getattr(module, attr, None)
    if factory is None:
        raise ConfigError(f"denoiser {name!r} is not available in this version ({module_name} has no {attr})")
    return factory


def get_denoiser(name: str, **options: Any) -> Denoiser:
    """Build the denoiser called `name` with its options; unknown names or options raise ConfigError."""
    key = str(name).lower()
    if key not in _BUILTIN and key not in _EXTRA:
        raise ConfigError(f"unknown denoiser {name!r}; choose one of {denoiser_names()}")
    factory = _resolve(key)
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"bad option for denoiser {key!r}: {exc}; see help({factory.__name__})") from exc


def check_frames(frames: np.ndarray, min_frames: int = 1) -> np.ndarray:
    """Validate the boundary format (uint8 [T,H,W,3]) so that every denoiser fails the same clear way."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = getattr(frames, "shape", None)
        dtype = getattr(frames, "dtype", type(frames).__name__)
        raise InputError(f"expected uint8 RGB frames [T,H,W,3], got {dtype} {shape}; read the video with "
                         "dnervcodec.video first")
    if frames.shape[0] < min_frames or frames.shape[1] < 2 or frames.shape[2] < 2:
        raise InputError(f"clip of shape {frames.shape} is too small: need at least {min_frames} frame(s) "
                         "of at least 2x2 pixels")
    return frames
