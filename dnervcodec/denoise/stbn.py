"""STBN: a CPU-sized Spatiotemporal Blind-Spot Network with flow alignment (after Chen et al., 2025),
fitted self-supervised on the noisy clip itself.

Why the output at pixel (t, p) never depends on the noisy input x_t(p) (the blind spot):

1. Per-frame encoder: a 3x3 conv whose centre weight is masked to zero, so a feature at p sees only
   offsets d in the ring {-1,0,1}^2 minus (0,0): every such d has an odd component. All later encoder
   convs are 1x1 or 3x3 with dilation 2, i.e. every offset they add is even in both components. A sum
   "odd-component offset + even offsets" can never be (0,0), so f_t(p) is blind to x_t(p) at any depth
   (residual sums and pointwise ReLUs only take unions of such offset sets; padding is zeros).
2. Propagation: the backward state reaching frame t is built from frames t+1..T-1 only, the forward
   state from frames 0..t-1 only; they are warped to frame t by (constant) flow and never contain x_t.
   Inside these recurrent cells anything goes (3x3 convs, the RFE, the raw neighbour pixels), because
   their noise is independent of frame t's. The two directions never mix before the head, since the
   backward state of t+1 mixed into the forward chain would bring x_t back in at frame t-1 -> t.
3. The "Blind-Spot Alignment" head sees [f_t, warped backward state, warped forward state] through 1x1
   convs only, so the spatial offset (0,0) of frame t enters only through f_t(p), which is blind.
   The output is not added to the input (a residual to x_t would break it). With the NLL loss the head
   also predicts a 3x3 covariance of the clean pixel (6 more 1x1 channels, just as blind); only the
   posterior mean at inference combines that prediction with the observed x_t(p)
   (dnervcodec.denoise.gaussian), after training is over.

The Spatial Receptive Field Expansion (pixel_unshuffle by 2, residual blocks, pixel_shuffle) mixes
odd offsets, so it is applied only inside the propagation cells (neighbour-frame features), not to f_t.
The flow is treated as a constant: it is estimated from the noisy (or first-pass denoised) frames, so
x_t(p) can in principle move which neighbour pixel nearest-neighbour warping picks, but never enters
the output value itself; `tests/test_denoise_stbn.py` checks the gradient is exactly zero.
Warp mode: nearest (default) copies one neighbour feature vector per pixel; bilinear (ablation) averages
four, which the paper reports as worse under blind-spot training. In this design both are blind.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from dnervcodec.checkpoint import Checkpointer, frames_digest
from dnervcodec.denoise.base import check_frames
from dnervcodec.denoise.flow import FLOW_BACKENDS, WARP_MODES, estimate_flows, warp
from dnervcodec.denoise.gaussian import COVARIANCE_PARAMS, covariance_from_raw, gaussian_nll, posterior_mean
from dnervcodec.denoise.noise import estimate_noise
from dnervcodec.denoise.run import ARRAY, RNG, Session, TrainingRun
from dnervcodec.device import resolve_device
from dnervcodec.errors import ConfigError
from dnervcodec.progress import Progress


class CentreMaskedConv2d(nn.Conv2d):
    """k x k conv whose centre tap is forced to zero in forward, so an output never sees its own pixel."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        mask = torch.ones_like(self.weight)
        mask[:, :, kernel // 2, kernel // 2] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class DilatedBlock(nn.Module):
    """Residual block of a dilation-2 3x3 conv and a 1x1 conv: adds only even offsets (keeps blindness)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=2, dilation=2)
        self.mix = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


class BlindSpotEncoder(nn.Module):
    """Per-frame features f_t(p) that are independent of x_t(p) (see the module docstring, point 1)."""

    def __init__(self, width: int, blocks: int) -> None:
        super().__init__()
        self.head = CentreMaskedConv2d(3, width, 3)
        self.body = nn.Sequential(*[DilatedBlock(width) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.head(x - 0.5))


class ResBlock(nn.Module):
    """Plain 3x3 residual block, for the (non-blind) neighbour-frame branch."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(width, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c2(F.relu(self.c1(x)))


class ReceptiveFieldExpansion(nn.Module):
    """pixel_unshuffle(2) -> residual blocks at half resolution -> pixel_shuffle(2), plus a skip.

    Quadruples the area each conv covers at a quarter of the cost; not blind, so only for neighbours.
    """

    def __init__(self, width: int, blocks: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(4 * width, width, 1)
        self.body = nn.Sequential(*[ResBlock(width) for _ in range(blocks)])
        self.up = nn.Conv2d(width, 4 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = F.pad(x, (0, w % 2, 0, h % 2))
        y = F.pixel_shuffle(self.up(self.body(self.down(F.pixel_unshuffle(y, 2)))), 2)
        return x + y[..., :h, :w]


class PropagationCell(nn.Module):
    """One step of a recurrent direction: (f_t, x_t, warped state of the previous step) -> new state."""

    def __init__(self, width: int, blocks: int, use_rfe: bool) -> None:
        super().__init__()
        self.inp = nn.Conv2d(2 * width + 3, width, 3, padding=1)
        self.body: nn.Module = (ReceptiveFieldExpansion(width, blocks) if use_rfe
                                else nn.Sequential(*[ResBlock(width) for _ in range(blocks)]))

    def forward(self, feat: torch.Tensor, frame: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        return self.body(F.relu(self.inp(torch.cat([feat, frame - 0.5, state], 1))))


class BlindSpotAlignment(nn.Module):
    """Fuses the current frame's blind features with both aligned neighbour states, 1x1 convs only.

    Outputs the blind-spot mean (3 channels, around 0.5) and, with out_channels=9, the 6 raw parameters
    of the clean signal's 3x3 covariance (see dnervcodec.denoise.gaussian).
    """

    def __init__(self, width: int, out_channels: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3 * width, 2 * width, 1), nn.ReLU(), nn.Conv2d(2 * width, width, 1),
                                 nn.ReLU(), nn.Conv2d(width, out_channels, 1))
        offset = torch.zeros(1, out_channels, 1, 1)
        offset[:, :3] = 0.5
        self.register_buffer("offset", offset, persistent=False)

    def forward(self, feat: torch.Tensor, back: torch.Tensor, fwd: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([feat, back, fwd], 1)) + self.offset


class STBNNet(nn.Module):
    """Clip [B,T,3,H,W] in [0,1] + flows [B,T,2,H,W] -> blind-spot estimate [B,T,C,H,W].

    C = 3 (the mean) or 9 (mean + the 6 raw covariance parameters); every channel is blind.
    """

    def __init__(self, width: int = 32, blocks: int = 2, use_rfe: bool = True, warp_mode: str = "nearest",
                 out_channels: int = 3) -> None:
        super().__init__()
        self.width, self.warp_mode = width, warp_mode
        self.encoder = BlindSpotEncoder(width, blocks)
        self.backward_cell = PropagationCell(width, blocks, use_rfe)
        self.forward_cell = PropagationCell(width, blocks, use_rfe)
        self.align = BlindSpotAlignment(width, out_channels)

    def forward(self, x: torch.Tensor, from_prev: torch.Tensor, from_next: torch.Tensor,
                states: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)) -> torch.Tensor:
        """`states`: the forward state of the frame before x's first one and the backward state of the frame
        after its last one (None: the clip starts / ends there; a zero state is the same)."""
        t = x.shape[1]
        frames = [x[:, i] for i in range(t)]
        feats = [self.encoder(f) for f in frames]
        back_in, _ = self.backward_sweep(feats, frames, [from_next[:, i] for i in range(t)], states[1])
        outs, _ = self.forward_sweep(feats, frames, [from_prev[:, i] for i in range(t)], back_in, states[0])
        return torch.stack(outs, 1)

    def backward_sweep(self, feats: list[torch.Tensor], frames: list[torch.Tensor], from_next: list[torch.Tensor],
                       state: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The backward direction over consecutive frames, last to first: (the state each frame receives,
        aligned to it; the backward state of the first frame, which the frame before it receives).

        `state` is the backward state of the frame after the last one (None: the clip ends there), so a
        clip can be swept in chunks with the state carried across their boundaries.
        """
        back_in: list[torch.Tensor] = [feats[0]] * len(feats)
        for i in reversed(range(len(feats))):
            back_in[i] = torch.zeros_like(feats[i]) if state is None else warp(state, from_next[i], self.warp_mode)
            state = self.backward_cell(feats[i], frames[i], back_in[i])
        return back_in, state

    def forward_sweep(self, feats: list[torch.Tensor], frames: list[torch.Tensor], from_prev: list[torch.Tensor],
                      back_in: list[torch.Tensor] | None, state: torch.Tensor | None = None
                      ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The forward direction over consecutive frames and the head: (each frame's blind-spot estimate,
        the forward state of the last frame). `state` is the forward state of the frame before the first
        one (None: the clip starts here); back_in=None runs the states alone (no estimates)."""
        outs = []
        for i in range(len(feats)):
            fwd_in = torch.zeros_like(feats[i]) if state is None else warp(state, from_prev[i], self.warp_mode)
            if back_in is not None:
                outs.append(self.align(feats[i], back_in[i], fwd_in))
            state = self.forward_cell(feats[i], frames[i], fwd_in)
        return outs, state


LOSSES = ("nll", "l2")
PROPAGATION_MODES = ("window", "sequence")


@dataclass
class STBN:
    """Self-supervised STBN denoiser: fits a fresh network on the clip it is asked to denoise.

    loss: "nll" (default) trains the mean and a 3x3 covariance of the clean pixel by the Gaussian
    negative log-likelihood of the noisy pixel and returns the posterior mean, which puts the observed
    pixel back in at inference (dnervcodec.denoise.gaussian); it needs the noise level: the `sigma` given
    to `denoise`, else `estimate_noise(frames).sigma`. "l2" trains the mean alone by blind-spot L2 and returns
    it (sigma is then not used).
    iters: training steps of the first pass. A second pass of refine_iters steps (None = iters // 4 with
    refine_flow, else 0) continues training with the flow re-estimated on the first pass's output
    (refine_flow) or, with refine_flow=False and refine_iters > 0, with the same noisy-frame flow: the
    control that isolates the refinement at an equal number of steps. Each step is `batch` random
    sub-clips of `clip_len` frames and `crop` x `crop` pixels.
    propagation: how inference propagates features. "window" runs the network on every clip_len-frame
    window (stride 1) and keeps the window centred on each frame: the recurrent states never run longer
    than in training. "sequence" is the paper's: both directions run over the whole clip once, in chunks
    of `chunk` frames with the states carried across chunk boundaries, so memory does not grow with the
    clip's length beyond one state per chunk (`chunk` changes memory, never the result).
    burn_in: training feeds each sub-clip the states of up to burn_in frames before and after it (0 to
    burn_in, uniformly, run without gradients), so that it learns the long-propagated states whole-clip
    inference produces. None = 4 with "sequence" (without it the states grow frame after frame and the
    output falls below the noisy input), 0 with "window" (which never needs them).
    window_average: inference averages each frame's estimates from every clip_len window that holds it;
    off by default (only the window centred on it), as the average measured 0.1 dB worse on bikes.
    Cost at the defaults: see docs/denoise.md (measured per clip, 1 thread).
    """

    width: int = 32
    blocks: int = 2
    iters: int = 1500
    refine_iters: int | None = None
    crop: int = 64
    clip_len: int = 5
    batch: int = 1
    lr: float = 1e-3
    loss: str = "nll"
    warp_mode: str = "nearest"
    refine_flow: bool = True
    use_rfe: bool = True
    window_average: bool = False
    propagation: str = "window"
    chunk: int = 8
    burn_in: int | None = None
    flow: str = "dis"
    seed: int = 0
    device: str = "auto"
    checkpoint_minutes: float = 5.0
    name: str = "stbn"
    history: list[float] = field(default_factory=list, repr=False)  # training losses of the last run
    sigma_used: float | None = field(default=None, repr=False)  # noise level (0-255) of the last run, nll only

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown STBN loss {self.loss!r}; choose one of {list(LOSSES)}")
        if self.warp_mode not in WARP_MODES:
            raise ConfigError(f"unknown warp_mode {self.warp_mode!r}; choose one of {list(WARP_MODES)}")
        if self.propagation not in PROPAGATION_MODES:
            raise ConfigError(f"unknown STBN propagation {self.propagation!r}; choose one of {list(PROPAGATION_MODES)}")
        if self.flow not in FLOW_BACKENDS:
            raise ConfigError(f"unknown flow backend {self.flow!r}; choose one of {list(FLOW_BACKENDS)}")
        for label in ("width", "blocks", "crop", "clip_len", "batch", "chunk"):
            if int(getattr(self, label)) < 1:
                raise ConfigError(f"STBN option {label} must be >= 1, got {getattr(self, label)}")
        if self.burn_in is not None and int(self.burn_in) < 0:
            raise ConfigError(f"STBN option burn_in must be >= 0, got {self.burn_in}")
        if self.iters < 0 or (self.refine_iters is not None and self.refine_iters < 0) or self.lr <= 0:
            raise ConfigError("STBN iters/refine_iters must be >= 0 and lr > 0")

    def build(self) -> STBNNet:
        out_channels = 3 + (COVARIANCE_PARAMS if self.loss == "nll" else 0)
        return STBNNet(self.width, self.blocks, self.use_rfe, self.warp_mode, out_channels)

    def options(self) -> dict:
        """The settings that define a run (what a checkpoint must match; `chunk` changes memory only)."""
        return {k: v for k, v in asdict(self).items()
                if k not in ("history", "sigma_used", "device", "checkpoint_minutes", "chunk")}

    @property
    def burn_in_frames(self) -> int:
        """Training burn-in per side: `burn_in`, or by default 4 with whole-clip propagation, 0 with windows."""
        if self.burn_in is not None:
            return int(self.burn_in)
        return 4 if self.propagation == "sequence" else 0

    @property
    def refines(self) -> bool:
        """Whether the second pass re-estimates the flow (not with the zero-flow test backend)."""
        return self.refine_flow and self.flow != "zero"

    @property
    def passes(self) -> list[int]:
        """Training steps of each pass: the first, then the second one (if any)."""
        if self.refines:
            return [self.iters, self.iters // 4 if self.refine_iters is None else self.refine_iters]
        return [self.iters] + ([self.refine_iters] if self.refine_iters else [])

    def noise_level(self, frames: np.ndarray, sigma: float | None) -> float | None:
        """The sigma (0-255) the NLL loss uses: the given one, else the blind estimate; None for l2."""
        if self.loss != "nll":
            return None
        if sigma is None:
            return estimate_noise(frames).sigma
        if not np.isfinite(sigma) or sigma <= 0:
            raise ConfigError(f"noise sigma must be a finite number > 0 on the 0-255 scale, got {sigma}")
        return float(sigma)

    def denoise(self, frames: np.ndarray, sigma: float | None = None, progress: bool | Progress = True,
                run_dir: str | os.PathLike | None = None, resume: bool = False) -> np.ndarray:
        check_frames(frames)
        device = resolve_device(self.device)
        noise = self.noise_level(frames, sigma)
        self.sigma_used = noise
        torch.manual_seed(self.seed)
        net = self.build().to(device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(device)  # uint8 [T,3,H,W]
        ckpt = Checkpointer(run_dir, {"denoiser": self.options(), "sigma": noise, "digest": frames_digest(frames)},
                            self.checkpoint_minutes)
        session = Session(self.name, ckpt, net, opt, _Run(rng=np.random.default_rng(self.seed)), resume)
        run = session.run
        self.history = run.history
        passes = self.passes
        windows = self.inference_steps(frames.shape[0])
        total = sum(passes) + len(passes) * windows  # training steps + the inference steps of each pass
        done = sum(passes[: run.pass_index]) + run.pass_index * windows + run.step
        s = None if noise is None else noise / 255.0
        with session.steps(progress, total, done) as bar:
            out = run.first_pass
            flows, flow_source = None, None
            while run.pass_index < len(passes):
                source = out if run.pass_index > 0 and self.refines else frames
                if flows is None or source is not flow_source:
                    flows, flow_source = self._flows(source, device), source
                self._train(net, opt, clip, flows, passes[run.pass_index], session, s, bar)
                out = self._infer(net, clip, flows, s, bar)
                run.pass_index, run.step, run.first_pass = run.pass_index + 1, 0, out
        return out

    def _flows(self, frames: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        prev, nxt = estimate_flows(frames, self.flow)
        return torch.from_numpy(prev).to(device), torch.from_numpy(nxt).to(device)

    def learning_rate(self, step: int, steps: int) -> float:
        """Cosine from lr down to lr/10 over a pass: a pure function of the step, so resumes are exact."""
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, steps) / max(steps, 1))))

    def objective(self, pred: torch.Tensor, x: torch.Tensor, s: float | None) -> torch.Tensor:
        """Training loss of a prediction [B,T,C,H,W] for the noisy clip x [B,T,3,H,W] (s = sigma / 255)."""
        if self.loss == "l2":
            return F.mse_loss(pred, x)
        y, mu, raw = x.movedim(2, -1), pred[:, :, :3].movedim(2, -1), pred[:, :, 3:].movedim(2, -1)
        return gaussian_nll(y, mu, covariance_from_raw(raw), s).mean()

    def estimate(self, pred: torch.Tensor, x: torch.Tensor, s: float | None) -> torch.Tensor:
        """The denoised clip [B,T,3,H,W]: the blind-spot mean (l2) or the posterior mean given x (nll)."""
        if self.loss == "l2":
            return pred
        y, mu, raw = x.movedim(2, -1), pred[:, :, :3].movedim(2, -1), pred[:, :, 3:].movedim(2, -1)
        return posterior_mean(y, mu, covariance_from_raw(raw), s).movedim(-1, 2)

    def _train(self, net: STBNNet, opt: torch.optim.Optimizer, clip: torch.Tensor,
               flows: tuple[torch.Tensor, torch.Tensor], iters: int, session: Session, s: float | None,
               bar: Progress) -> None:
        run = session.run
        t, _, h, w = clip.shape
        length, ch, cw = min(self.clip_len, t), min(self.crop, h), min(self.crop, w)
        net.train()
        while run.step < iters:
            session.check_stop()
            for group in opt.param_groups:
                group["lr"] = self.learning_rate(run.step, iters)
            xs, ps, ns, fs, bs = [], [], [], [], []
            for _ in range(self.batch):
                t0 = int(run.rng.integers(0, t - length + 1))
                y0, x0 = int(run.rng.integers(0, h - ch + 1)), int(run.rng.integers(0, w - cw + 1))
                area = (slice(None), slice(y0, y0 + ch), slice(x0, x0 + cw))
                sl = (slice(t0, t0 + length), *area)
                xs.append(clip[sl].float() / 255.0)
                ps.append(flows[0][sl])
                ns.append(flows[1][sl])
                if self.burn_in_frames:
                    before = self._context(run.rng, t0)
                    after = self._context(run.rng, t - t0 - length)
                    fwd, back = self._burn_in(net, clip, flows, area, t0, t0 + length, before, after)
                    fs.append(fwd)
                    bs.append(back)
            x = torch.stack(xs)
            prev, nxt = torch.stack(ps), torch.stack(ns)
            states = (torch.cat(fs), torch.cat(bs)) if fs else (None, None)
            if not fs:
                prev[:, 0], nxt[:, -1] = 0, 0  # the sub-clip's ends have no neighbour inside the crop
            loss = self.objective(net(x, prev, nxt, states), x, s)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            run.history.append(value)
            run.step += 1
            bar.update(1, loss=value, **{"pass": f"{run.pass_index + 1}/{len(self.passes)}"})
            session.save_if_due()

    def _context(self, rng: np.random.Generator, available: int) -> int:
        """Burn-in frames on one side of a training sub-clip: 0..burn_in, uniformly (as many as there are).

        Measured on 24 Bunny frames (400 steps, sigma 30): uniform 0..4 gave 28.09 dB against 28.16 dB
        for windowed training and inference; always the full burn_in gave 27.60 dB (the clip's first and
        last frames, where one direction starts from zero, fell to 20 dB: training rarely saw that), and
        none half of the time 27.73 dB.
        """
        return int(rng.integers(0, min(self.burn_in_frames, available) + 1))

    @torch.no_grad()
    def _burn_in(self, net: STBNNet, clip: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor], area: tuple,
                 start: int, end: int, before: int, after: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward, backward) states that the training sub-clip [start, end) receives from `before` frames
        before it and `after` frames after it, in the same crop, run without gradients (a zero state where
        there are none). Training then sees the long-propagated states that whole-clip inference feeds
        the network: trained on states that always start from zero, whole-clip inference fails."""
        def inputs(a: int, b: int, k: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
            frames = [clip[(i, *area)].unsqueeze(0).float() / 255.0 for i in range(a, b)]
            return [net.encoder(f) for f in frames], frames, [flows[k][(i, *area)].unsqueeze(0) for i in range(a, b)]

        zero = clip.new_zeros((1, net.width, *clip[(0, *area)].shape[-2:]), dtype=torch.float32)
        fwd = net.forward_sweep(*inputs(start - before, start, 0), None)[1] if before else zero
        back = net.backward_sweep(*inputs(end, end + after, 1))[1] if after else zero
        return fwd, back

    def windows(self, num_frames: int) -> int:
        """Inference windows per pass: every clip_len-frame window of the clip (stride 1)."""
        return num_frames - min(self.clip_len, num_frames) + 1

    def chunks(self, num_frames: int) -> list[tuple[int, int]]:
        """[start, end) of each chunk of whole-clip propagation, in frame order."""
        return [(a, min(a + self.chunk, num_frames)) for a in range(0, num_frames, self.chunk)]

    def inference_steps(self, num_frames: int) -> int:
        """Progress steps of one inference: a window each, or a chunk each in both sweeps."""
        if self.propagation == "sequence":
            return 2 * len(self.chunks(num_frames))
        return self.windows(num_frames)

    def _window_estimates(self, net: STBNNet, clip: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
                          s: float | None) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, estimate [clip_len,3,H,W]) of every clip_len-frame window, full frames."""
        net.eval()
        length = min(self.clip_len, clip.shape[0])
        for s0 in range(self.windows(clip.shape[0])):
            sl = slice(s0, s0 + length)
            x = clip[sl].float().unsqueeze(0) / 255.0
            pred = net(x, flows[0][sl].unsqueeze(0), flows[1][sl].unsqueeze(0))
            yield s0, self.estimate(pred, x, s)[0]

    def _sequence_estimates(self, net: STBNNet, clip: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
                            s: float | None, bar: Progress) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, estimate [n,3,H,W]) of each chunk, from both directions propagated over the whole clip.

        First sweep: the backward direction from the last frame to the first, chunk by chunk, keeping only
        the backward state at each chunk's start. Second sweep, in frame order: each chunk's backward
        inputs are recomputed from the state kept at the next chunk's start, and the forward state is
        carried over from the previous chunk. Exactly the network's forward over the whole clip, for 1.5x
        the encoder and backward cost, holding one chunk of features and one state per chunk.
        """
        net.eval()
        spans = self.chunks(clip.shape[0])

        def load(a: int, b: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            frames = [clip[i : i + 1].float() / 255.0 for i in range(a, b)]
            return frames, [net.encoder(f) for f in frames]

        def flow(k: int, a: int, b: int) -> list[torch.Tensor]:
            return [flows[k][i : i + 1] for i in range(a, b)]

        starts: dict[int, torch.Tensor] = {}  # chunk start -> backward state of that frame
        state, first = None, None
        for a, b in reversed(spans):
            frames, feats = load(a, b)
            back_in, state = net.backward_sweep(feats, frames, flow(1, a, b), state)
            if a == 0:
                first = frames, feats, back_in  # the second sweep starts here: keep it instead of recomputing
            else:
                starts[a] = state
            bar.update(1)
        fwd = None
        for a, b in spans:
            if a == 0 and first is not None:
                frames, feats, back_in = first
                first = None
            else:
                frames, feats = load(a, b)
                back_in, _ = net.backward_sweep(feats, frames, flow(1, a, b), starts.pop(b, None))
            outs, fwd = net.forward_sweep(feats, frames, flow(0, a, b), back_in, fwd)
            yield a, self.estimate(torch.stack(outs, 1), torch.stack(frames, 1), s)[0]

    @torch.no_grad()
    def _infer(self, net: STBNNet, clip: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
               s: float | None, bar: Progress) -> np.ndarray:
        """The denoised clip (uint8 [T,H,W,3]) by the configured propagation."""
        if self.propagation == "sequence":
            out = np.empty((clip.shape[0], clip.shape[2], clip.shape[3], 3), np.uint8)
            for a, est in self._sequence_estimates(net, clip, flows, s, bar):
                out[a : a + est.shape[0]] = _to_uint8(est)
                bar.update(1)
            return out
        return self._infer_windows(net, clip, flows, s, bar)

    def _infer_windows(self, net: STBNNet, clip: torch.Tensor, flows: tuple[torch.Tensor, torch.Tensor],
                       s: float | None, bar: Progress) -> np.ndarray:
        """Full frames from clip_len-frame windows, each computed once (stride 1).

        The recurrent states are only trained over clip_len frames, so windows keep them at the training
        length (on a tiny test clip, running them over all 40 frames once measured 15.3 dB instead of
        24.8 dB; `propagation="sequence"` is that whole-clip inference, measured in docs/denoise.md), at
        about clip_len times the cost of one pass.
        window_average: a frame's estimate is the mean over every window that holds it (up to clip_len
        estimates from different temporal contexts, at no extra cost); else only the window centred on it
        (clamped at the ends) is used.
        """
        t, _, h, w = clip.shape
        length = min(self.clip_len, t)
        acc = torch.zeros(t, 3, h, w)
        count = torch.zeros(t, 1, 1, 1)
        for s0, est in self._window_estimates(net, clip, flows, s):
            for k in range(length):
                i = s0 + k
                if self.window_average or min(max(i - length // 2, 0), t - length) == s0:
                    acc[i] += est[k].float().cpu()
                    count[i] += 1
            bar.update(1)
        return _to_uint8(acc / count)


def _to_uint8(est: torch.Tensor) -> np.ndarray:
    """[T,3,H,W] floats in [0,1] -> uint8 [T,H,W,3]."""
    return (est.float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@dataclass(kw_only=True)
class _Run(TrainingRun):
    """Where a denoising run stands: pass, step within it, the sampler's state, losses, first-pass output."""

    rng: np.random.Generator = field(metadata=RNG)
    pass_index: int = 0
    first_pass: np.ndarray | None = field(default=None, metadata=ARRAY)

    def position(self) -> str:
        return f"in pass {self.pass_index + 1}, step {self.step}"
