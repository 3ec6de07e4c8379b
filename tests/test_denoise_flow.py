"""Flow convention and nearest-neighbour warping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnervcodec.denoise.flow import estimate_flows, warp
from dnervcodec.errors import ConfigError


def _texture(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min()) * 255
    return np.repeat(img[..., None], 3, -1).astype(np.uint8)


def test_nearest_warp_by_integer_shift_is_exact() -> None:
    feats = torch.randn(2, 5, 20, 24)
    dx, dy = 3, -2
    flow = torch.zeros(2, 2, 20, 24)
    flow[:, 0], flow[:, 1] = dx, dy
    out = warp(feats, flow, "nearest")
    # out(y, x) = feats(y + dy, x + dx) away from the borders
    assert torch.equal(out[..., 2:, : 24 - dx], feats[..., : 20 - 2, dx:])
    # sub-pixel flows below 0.5 px leave nearest unchanged; bilinear averages
    assert torch.equal(warp(feats, torch.full_like(flow, 0.3)), feats)
    assert not torch.equal(warp(feats, torch.full_like(flow, 0.3), "bilinear"), feats)
    with pytest.raises(ConfigError):
        warp(feats, flow, "bicubic")


def test_dis_recovers_a_global_shift_with_the_documented_convention() -> None:
    big = _texture(120, 160)
    dx, dy = 3, 2
    prev_frame = big[10:106, 10:138]  # frame t-1
    cur_frame = big[10 + dy:106 + dy, 10 + dx:138 + dx]  # frame t: content moved by (-dx, -dy)
    from_prev, from_next = estimate_flows(np.stack([prev_frame, cur_frame]), "dis")
    inner = (slice(16, -16), slice(16, -16))
    # pulling t-1 into t: cur(y, x) = prev(y + dy, x + dx)
    assert abs(np.median(from_prev[1, 0][inner]) - dx) < 0.5
    assert abs(np.median(from_prev[1, 1][inner]) - dy) < 0.5
    assert abs(np.median(from_next[0, 0][inner]) + dx) < 0.5
    assert not from_prev[0].any() and not from_next[1].any()
    warped = warp(torch.from_numpy(prev_frame).permute(2, 0, 1)[None].float(), torch.from_numpy(from_prev[1:2]))
    err = (warped[0].permute(1, 2, 0).numpy() - cur_frame)[16:-16, 16:-16]
    assert np.abs(err).mean() < 3.0


def test_zero_backend_and_unknown_backend() -> None:
    frames = np.stack([_texture(16, 16)] * 3)
    prev, nxt = estimate_flows(frames, "zero")
    assert prev.shape == (3, 2, 16, 16) and not prev.any() and not nxt.any()
    with pytest.raises(ConfigError, match="dis"):
        estimate_flows(frames, "raft")
