"""Optical flow without downloaded weights (OpenCV DIS) and feature warping for blind-spot alignment.

Convention, used everywhere in `denoise`: a flow field `flow[t]` is [2,H,W] float32 in pixels, channel
0 = dx (along width), channel 1 = dy (along height), and it *pulls* a source frame into frame t:

    warped_t(y, x) = source(y + flow[t][1, y, x], x + flow[t][0, y, x])

`estimate_flows` returns two such fields per frame: `from_prev[t]` pulls frame t-1 into t and
`from_next[t]` pulls frame t+1 into t (all zeros where that neighbour does not exist). With DIS this is
`calc(I0=frame_t, I1=neighbour)`, whose output satisfies I0(p) ~ I1(p + flow(p)).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dnervcodec.denoise.base import check_frames
from dnervcodec.errors import ConfigError

FLOW_BACKENDS = ("dis", "zero")
WARP_MODES = ("nearest", "bilinear")
_DIS_PRESETS = {"fast": cv2.DISOPTICAL_FLOW_PRESET_FAST, "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
                "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST}


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def dis_flow(target: np.ndarray, source: np.ndarray, preset: str = "medium") -> np.ndarray:
    """DIS flow [2,H,W] (dx, dy) pulling uint8 RGB `source` [H,W,3] into `target` [H,W,3]."""
    if preset not in _DIS_PRESETS:
        raise ConfigError(f"unknown DIS preset {preset!r}; choose one of {sorted(_DIS_PRESETS)}")
    dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    flow = dis.calc(_gray(target), _gray(source), None)
    return np.ascontiguousarray(flow.transpose(2, 0, 1), dtype=np.float32)


def estimate_flows(frames: np.ndarray, backend: str = "dis", preset: str = "medium") -> tuple[np.ndarray, np.ndarray]:
    """(from_prev, from_next), each float32 [T,2,H,W] in pixels; see the module docstring."""
    check_frames(frames)
    if backend not in FLOW_BACKENDS:
        raise ConfigError(f"unknown flow backend {backend!r}; choose one of {list(FLOW_BACKENDS)}")
    t, h, w = frames.shape[:3]
    from_prev = np.zeros((t, 2, h, w), np.float32)
    from_next = np.zeros((t, 2, h, w), np.float32)
    if backend == "dis":
        for i in range(t - 1):
            from_next[i] = dis_flow(frames[i], frames[i + 1], preset)
            from_prev[i + 1] = dis_flow(frames[i + 1], frames[i], preset)
    return from_prev, from_next


def warp(features: torch.Tensor, flow: torch.Tensor, mode: str = "nearest") -> torch.Tensor:
    """Pull `features` [N,C,H,W] along `flow` [N,2,H,W] (pixels, dx then dy); outside -> border values.

    Nearest is the default: each output takes exactly one source feature vector, so nothing gets
    averaged across neighbouring (independently noisy) positions; bilinear is kept for the ablation.
    """
    if mode not in WARP_MODES:
        raise ConfigError(f"unknown warp mode {mode!r}; choose one of {list(WARP_MODES)}")
    n, _, h, w = features.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = xs + flow[:, 0]
    y = ys + flow[:, 1]
    # align_corners=True maps -1/+1 to the centres of the first/last pixel: normalised = 2*p/(size-1) - 1
    gx = 2.0 * x / max(w - 1, 1) - 1.0
    gy = 2.0 * y / max(h - 1, 1) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(features, grid.to(features.dtype), mode=mode, padding_mode="border", align_corners=True)
