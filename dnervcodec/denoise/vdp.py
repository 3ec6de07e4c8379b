"""VDP: Video Dynamics Prior (after Shrivastava, Lim & Shrivastava, NeurIPS 2023), fitted to the noisy clip.

Internal learning: no training data. A generative model of this one clip -- per-frame latent codes, a
recurrent Latent Frame Predictor (LFPNet) over them and a convolutional Frame Decoder (FDNet) -- is fitted
to the noisy frames; its output is the denoised clip, because a conv decoder shared by all frames
reproduces structure recurring in space and time long before it reproduces white noise.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dnervcodec.checkpoint import Checkpointer, frames_digest
from dnervcodec.denoise.base import check_frames
from dnervcodec.denoise.noise import estimate_noise
from dnervcodec.denoise.run import Session, TrainingRun
from dnervcodec.device import resolve_device
from dnervcodec.errors import ConfigError
from dnervcodec.progress import Progress

DYNAMICS_MODES = ("free", "rollout")


def pyramid_weights(levels: int, growth: float = 1.0) -> list[float]:
    """Per-scale weights of the pyramid loss, normalised to sum 1; scale l (1/2^l size) gets growth**l."""
    w = [growth ** level for level in range(levels)]
    return [v / sum(w) for v in w]


def pyramid_loss(x: torch.Tensor, y: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """Weighted MSE between the average pyramids of x and y ([N,C,H,W]); one weight = plain MSE.

    Scale l averages 2^l x 2^l blocks (floor at odd sizes), which divides the variance of white noise by
    4^l while keeping the structure that recurs across scales: the coarse terms pull the fit towards the
    clip's content, and only the finest term can be lowered by reproducing the noise.
    """
    total = x.new_zeros(())
    for level, w in enumerate(weights):
        if level:
            if min(x.shape[-2:]) < 2:
                break
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        total = total + w * F.mse_loss(x, y)
    return total


class LatentFramePredictor(nn.Module):
    """LFPNet: a ConvLSTM over latent maps; from z_0..z_t it predicts z_{t+1} as z_t plus a learned step."""

    def __init__(self, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.from_input = nn.Conv2d(latent_dim, 4 * hidden, 3, padding=1)  # split from the recurrent part so
        self.from_state = nn.Conv2d(hidden, 4 * hidden, 3, padding=1, bias=False)  # it can run batched
        self.step = nn.Conv2d(hidden, latent_dim, 3, padding=1)
        nn.init.zeros_(self.step.weight)
        nn.init.zeros_(self.step.bias)

    def cell(self, z: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor],
             z_gates: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple]:
        """One step: latent z_t and the (h, c) state -> prediction of z_{t+1} and the new state.

        `z_gates` is from_input(z) when the caller has computed it already (for all steps at once)."""
        h, c = state
        gates = (self.from_input(z) if z_gates is None else z_gates) + self.from_state(h)
        i, f, o, g = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return z + self.step(h), (h, c)

    def zero_state(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = z.new_zeros(z.shape[0], self.hidden, *z.shape[2:])
        return h, h.clone()

    def predict_next(self, z: torch.Tensor) -> torch.Tensor:
        """Teacher-forced: latents [T,C,h,w] -> predictions [T-1,C,h,w] of z_1..z_{T-1} from their past."""
        state, preds = self.zero_state(z[:1]), []
        z_gates = self.from_input(z[:-1])
        for t in range(z.shape[0] - 1):
            pred, state = self.cell(z[t : t + 1], state, z_gates[t : t + 1])
            preds.append(pred)
        return torch.cat(preds) if preds else z[:0]

    def rollout(self, z0: torch.Tensor, steps: int) -> torch.Tensor:
        """Free-running: z_0 [1,C,h,w] -> [steps,C,h,w], each latent predicted from the previous ones."""
        state, zs = self.zero_state(z0), [z0]
        for _ in range(steps - 1):
            nxt, state = self.cell(zs[-1], state)
            zs.append(nxt)
        return torch.cat(zs)


class FrameDecoder(nn.Module):
    """FDNet: latent map [N,C,h,w] -> frames [N,3,h*2^k,w*2^k], k = len(widths), NeRV-style upsampling.

    Each stage is a 3x3 conv to 4x the channels, a pixel shuffle (x2) and a GELU: cheap at low resolution,
    with the channel count falling as the resolution rises, so most of the cost sits in the last stages.
    """

    def __init__(self, latent_dim: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.stem = nn.Conv2d(latent_dim, widths[0], 3, padding=1)
        stages, cin = [], widths[0]
        for cout in widths:
            stages += [nn.Conv2d(cin, 4 * cout, 3, padding=1), nn.PixelShuffle(2), nn.GELU()]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(F.gelu(self.stem(z)))) + 0.5


class VDPNet(nn.Module):
    """Latents + LFPNet + FDNet for one clip of T frames of H x W pixels.

    dynamics="rollout" (the paper): only z_0 ~ N(0, I) is sampled; z_1.. come from the LFPNet rolling out.
    dynamics="free": every frame has its own latent (initialised as a slow random walk from z_0),
    optimised jointly; the LFPNet predicts each latent from the past ones and a dynamics term ties them.
    """

    def __init__(self, frames: int, height: int, width: int, latent_dim: int, widths: Sequence[int],
                 hidden: int, dynamics: str, walk: float) -> None:
        super().__init__()
        self.frames, self.height, self.width, self.dynamics = frames, height, width, dynamics
        stride = 2 ** len(widths)
        shape = (latent_dim, math.ceil(height / stride), math.ceil(width / stride))
        z = [torch.randn(1, *shape)]
        if dynamics == "free":
            for _ in range(frames - 1):  # keeps unit variance: neighbours start close, far frames apart
                z.append(math.sqrt(1 - walk**2) * z[-1] + walk * torch.randn(1, *shape))
        self.latents = nn.Parameter(torch.cat(z))
        self.lfp = LatentFramePredictor(latent_dim, hidden)
        self.fd = FrameDecoder(latent_dim, widths)

    def codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(latents z_0..z_{T-1}, the LFPNet's predictions of z_1..z_{T-1} from their past)."""
        if self.dynamics == "rollout":
            z = self.lfp.rollout(self.latents, self.frames)
            return z, z[1:]
        return self.latents, self.lfp.predict_next(self.latents)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [N,C,h,w] -> frames [N,3,H,W] (the decoder's extra rows/columns are cropped)."""
        return self.fd(z)[..., : self.height, : self.width]


@dataclass
class VDP:
    """Self-supervised VDP denoiser: fits a fresh latent-dynamics model to the clip it is asked to denoise.

    iters: total optimizer steps; the first predict_fraction of them train future-frame prediction, the
    rest the denoising objective. Each step decodes `batch` frames. pyramid_levels=1 is the plain
    single-scale loss (the paper's ablation).
    dynamics: "free" (the default, which is not the paper's method: a free latent per frame, the predictor
    only a loss term tying them) or "rollout" (the paper's: only z_0 is free, z_1.. are the predictor's
    rollout). The default changes to rollout only once it measures no worse (docs/denoise.md).
    """

    iters: int = 3000
    pyramid_levels: int = 3
    seed: int = 0
    device: str = "auto"
    checkpoint_minutes: float = 5.0
    name: str = "vdp"
    latent_dim: int = 16
    widths: tuple[int, ...] = (96, 64, 48, 32)
    hidden: int = 32
    dynamics: str = "free"
    walk: float = 0.1
    predict_fraction: float = 0.1
    batch: int = 4
    lr: float = 2e-3
    latent_lr: float | None = None
    pyramid_growth: float = 1.0
    dynamics_weight: float = 1.0
    tv_weight: float = 0.0
    ema: float = 0.9
    stop_ratio: float | None = None
    latent_noise: float = 0.0
    history: list[dict] = field(default_factory=list, repr=False)
    on_eval: Callable[[int, np.ndarray], None] | None = field(default=None, repr=False, compare=False)
    eval_every: int = 0

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if self.dynamics not in DYNAMICS_MODES:
            raise ConfigError(f"unknown VDP dynamics {self.dynamics!r}; choose one of {list(DYNAMICS_MODES)}")
        for label in ("pyramid_levels", "latent_dim", "hidden", "batch"):
            if int(getattr(self, label)) < 1:
                raise ConfigError(f"VDP option {label} must be >= 1, got {getattr(self, label)}")
        if not self.widths or min(self.widths) < 1:
            raise ConfigError(f"VDP widths must be a non-empty list of positive channel counts, got {self.widths}")
        if self.iters < 0 or self.lr <= 0 or (self.latent_lr is not None and self.latent_lr <= 0):
            raise ConfigError("VDP iters must be >= 0 and lr, latent_lr > 0")
        if not 0 <= self.predict_fraction <= 1 or not 0 <= self.ema < 1 or not 0 <= self.walk <= 1:
            raise ConfigError("VDP predict_fraction and walk must be in [0, 1], ema in [0, 1)")
        if min(self.pyramid_growth, self.dynamics_weight, self.tv_weight) < 0 or self.eval_every < 0:
            raise ConfigError("VDP loss weights and eval_every must be >= 0")
        if self.stop_ratio is not None and self.stop_ratio <= 0:
            raise ConfigError(f"VDP stop_ratio must be > 0 or None, got {self.stop_ratio}")

    def options(self) -> dict:
        """The settings that define a run (what a checkpoint must match)."""
        skip = ("history", "device", "checkpoint_minutes", "on_eval", "eval_every")
        return {k: v for k, v in asdict(self).items() if k not in skip}

    @property
    def predict_iters(self) -> int:
        return round(self.iters * self.predict_fraction)

    def lr_scale(self, step: int) -> float:
        """Cosine from 1 down to 1/10 over all steps: a pure function of the step, so resumes are exact."""
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, self.iters) / max(self.iters, 1)))

    def batch_frames(self, step: int, num_frames: int) -> np.ndarray:
        """Frames of a step: consecutive slices of per-epoch permutations seeded by (seed, epoch)."""
        start = step * self.batch
        idx = []
        for pos in range(start, start + min(self.batch, num_frames)):
            epoch, k = divmod(pos, num_frames)
            idx.append(np.random.default_rng([self.seed, epoch]).permutation(num_frames)[k])
        return np.asarray(idx)

    def denoise(self, frames: np.ndarray, sigma: float | None = None, progress: bool | Progress = True,
                run_dir: str | os.PathLike | None = None, resume: bool = False) -> np.ndarray:
        check_frames(frames)
        device = resolve_device(self.device)
        t, h, w, _ = frames.shape
        if self.stop_ratio is not None and sigma is None:
            sigma = estimate_noise(frames).sigma
        torch.manual_seed(self.seed)
        net = VDPNet(t, h, w, self.latent_dim, self.widths, self.hidden, self.dynamics, self.walk)
        net = net.to(device, memory_format=torch.channels_last)  # measured ~20% faster convs on CPU
        opt = self._optimizer(net)
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(device)  # uint8 [T,3,H,W]
        ckpt = Checkpointer(run_dir, {"denoiser": self.options(), "digest": frames_digest(frames)},
                            self.checkpoint_minutes)
        session = Session(self.name, ckpt, net, opt, _Run.start(clip.shape), resume)
        run = session.run
        self.history = run.history
        with session.steps(progress, self.iters, run.step) as bar:
            self._fit(net, opt, clip, sigma, session, bar)
        return self._estimate(net, run, device)

    def _optimizer(self, net: VDPNet) -> torch.optim.Optimizer:
        nets = [p for n, p in net.named_parameters() if n != "latents"]
        return torch.optim.Adam([{"params": nets, "lr": self.lr},
                                 {"params": [net.latents], "lr": self.latent_lr or self.lr}])

    def _fit(self, net: VDPNet, opt: torch.optim.Optimizer, clip: torch.Tensor, sigma: float | None,
             session: Session, bar: Progress) -> None:
        run = session.run
        weights = pyramid_weights(self.pyramid_levels, self.pyramid_growth)
        base_lrs = [self.lr, self.latent_lr or self.lr]
        while run.step < self.iters and not run.stopped:
            session.check_stop()
            for group, base in zip(opt.param_groups, base_lrs):
                group["lr"] = base * self.lr_scale(run.step)
            predicting = run.step < self.predict_iters
            idx = torch.from_numpy(self.batch_frames(run.step, clip.shape[0])).to(clip.device)
            target = clip[idx].float() / 255.0
            z, z_pred = net.codes()
            if predicting:  # future-frame prediction: frame t from the latent the LFPNet predicts from z_<t
                codes = torch.cat([z[:1], z_pred]) if net.dynamics == "free" else z
                out = net.decode(codes[idx])
                loss = F.mse_loss(out, target)
            else:
                out = net.decode(self._perturb(z[idx], run.step))
                loss = pyramid_loss(out, target, weights)
            terms = {"fit": float(loss.detach())}
            if net.dynamics == "free" and self.dynamics_weight > 0 and z_pred.shape[0]:
                dyn = F.mse_loss(z_pred, z[1:])
                loss = loss + self.dynamics_weight * dyn
                terms["dyn"] = float(dyn.detach())
            if self.tv_weight > 0:
                tv = (out[..., 1:, :] - out[..., :-1, :]).abs().mean() + (out[..., 1:] - out[..., :-1]).abs().mean()
                loss = loss + self.tv_weight * tv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not predicting:
                run.observe(idx.cpu(), out.detach().cpu(), target.cpu(), self.ema)
                terms["residual"] = run.residual_rms()
            run.step += 1
            phase = "predict" if predicting else "denoise"
            run.history.append({"iter": run.step, "phase": phase, "loss": float(loss.detach()), **terms})
            run.check_stop(sigma, self.stop_ratio)
            bar.update(1, loss=float(loss.detach()), phase=phase)
            if self.on_eval is not None and self.eval_every and run.step % self.eval_every == 0:
                self.on_eval(run.step, self._estimate(net, run, clip.device))
            session.save_if_due()
        if run.stopped:
            bar.update(self.iters - run.step)

    def _perturb(self, z: torch.Tensor, step: int) -> torch.Tensor:
        """DIP's input-noise regulariser: jitter the decoded latents; the draw is a function of (seed, step)."""
        if self.latent_noise <= 0:
            return z
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        return z + self.latent_noise * torch.randn(z.shape, generator=gen).to(z.device)

    @torch.no_grad()
    def _estimate(self, net: VDPNet, run: "_Run", device: torch.device) -> np.ndarray:
        """The denoised clip now: the running average of the decoded frames where every frame has one,
        else a fresh decode of the current model."""
        if self.ema > 0 and bool((run.count > 0).all()):
            est = run.average(self.ema)
        else:
            z, _ = net.codes()
            est = torch.cat([net.decode(z[i : i + 4]).cpu() for i in range(0, z.shape[0], 4)])
        return (est.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@dataclass(kw_only=True)
class _Run(TrainingRun):
    """Where a fit stands: step, losses, the running average of decoded frames, the noise-stop state."""

    ema: torch.Tensor  # [T,3,H,W] exponential moving average of decoded frames (bias not yet corrected)
    count: torch.Tensor  # [T] updates per frame, for the bias correction
    residual: torch.Tensor  # [T] last full-resolution residual MSE of each frame (0-255 scale)
    stopped: bool = False

    @classmethod
    def start(cls, shape: torch.Size) -> "_Run":
        t, _, h, w = shape
        return cls(ema=torch.zeros(t, 3, h, w), count=torch.zeros(t, dtype=torch.long),
                   residual=torch.full((t,), float("inf"), dtype=torch.float64))

    def observe(self, idx: torch.Tensor, out: torch.Tensor, target: torch.Tensor, decay: float) -> None:
        """Fold a step's decoded frames into the average and remember their residual energy."""
        self.ema[idx] = decay * self.ema[idx] + (1 - decay) * out
        self.count[idx] += 1
        self.residual[idx] = ((out - target) * 255.0).pow(2).flatten(1).mean(1).double()

    def average(self, decay: float) -> torch.Tensor:
        return self.ema / (1 - decay ** self.count.double()).float().view(-1, 1, 1, 1)

    def residual_rms(self) -> float:
        """RMS of the latest full-resolution residuals (0-255 scale) over the frames decoded so far."""
        seen = torch.isfinite(self.residual)
        return float(self.residual[seen].mean().sqrt()) if bool(seen.any()) else float("nan")

    def check_stop(self, sigma: float | None, ratio: float | None) -> None:
        """Noise-level-aware stop: once the residual falls to (ratio * sigma)^2 the rest would be noise."""
        if ratio is not None and sigma is not None and bool(torch.isfinite(self.residual).all()):
            self.stopped = float(self.residual.mean()) <= (ratio * sigma) ** 2
