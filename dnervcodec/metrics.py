"""Quality and rate metrics: one definition shared by the tests, the CLI and every benchmark.

PSNR is computed in RGB on [0, 1] per frame and averaged over frames, for our codec and every baseline.
bpp counts the bytes of the whole file (header included) over T*H*W pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _as_float(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [T,H,W,3] array or float [T,3,H,W] tensor in [0,1] -> float64 [T,3,H,W]."""
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(frames)
    if frames.dtype == torch.uint8:
        return frames.permute(0, 3, 1, 2).double() / 255.0
    return frames.double()


def mse_per_frame(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> torch.Tensor:
    x, y = _as_float(a), _as_float(b)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {tuple(x.shape)} vs {tuple(y.shape)}")
    return ((x - y) ** 2).flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor | float) -> torch.Tensor:
    mse = torch.as_tensor(mse, dtype=torch.float64)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def psnr_per_frame(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    return psnr_from_mse(mse_per_frame(a, b)).numpy()


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """Mean over frames of the per-frame RGB PSNR in dB (peak 1.0, i.e. 255 for uint8)."""
    return float(psnr_per_frame(a, b).mean())


def gaussian_window(size: int = 11, sigma: float = 1.5, like: torch.Tensor | None = None) -> torch.Tensor:
    """1-D Gaussian window, in the dtype and on the device of `like` (float64 CPU by default)."""
    dtype = like.dtype if like is not None else torch.float64
    device = like.device if like is not None else None
    g = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(g**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_parts(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and mean contrast-structure term (valid windows only), differentiable."""
    c1, c2 = 0.01**2, 0.03**2
    ch = x.shape[1]
    kh = win.view(1, 1, -1, 1).repeat(ch, 1, 1, 1)
    kw = win.view(1, 1, 1, -1).repeat(ch, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kh, groups=ch), kw, groups=ch)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = ((2 * mx * my + c1) / (mx**2 + my**2 + c1)) * cs
    return ssim.flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim_per_frame(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Multi-scale SSIM (Wang et al. 2003, 5 scales, 11x11 Gaussian sigma 1.5), RGB channels averaged.

    Small frames get fewer scales (and a smaller window) so that every scale still holds a window; the
    weights of the scales used are renormalised.
    """
    x, y = _as_float(a), _as_float(b)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch {tuple(x.shape)} vs {tuple(y.shape)}")
    side = min(x.shape[-2:])
    win_size = min(11, side if side % 2 else side - 1)
    scales = 1
    while scales < 5 and side // 2**scales >= win_size:
        scales += 1
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    win = gaussian_window(win_size)
    out = []
    for t in range(x.shape[0]):
        xi, yi = x[t : t + 1], y[t : t + 1]
        values = []
        for s in range(scales):
            ssim, cs = ssim_parts(xi, yi, win)
            values.append((ssim if s == scales - 1 else cs).clamp_min(0))
            if s < scales - 1:
                xi, yi = F.avg_pool2d(xi, 2), F.avg_pool2d(yi, 2)
        out.append(float(torch.prod(torch.stack(values).squeeze(-1) ** weights)))
    return np.array(out)


def ms_ssim(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    return float(ms_ssim_per_frame(a, b).mean())


def bpp(num_bytes: int, num_frames: int, height: int, width: int) -> float:
    """Bits per pixel of a whole file: bytes * 8 / (T * H * W)."""
    return num_bytes * 8.0 / (num_frames * height * width)
