"""`--device auto|cpu|cuda`: one rule for every model in the package (fits, denoisers, decoding)."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: "str | torch.device" = "auto") -> torch.device:
    """'auto' picks CUDA when present, else the CPU; asking for CUDA without it is a ConfigError."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device '{name}' (use auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but is not available; use --device cpu")
    return device
