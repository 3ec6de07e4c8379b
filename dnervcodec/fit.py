"""Fit a DNeRV model to one clip: Adam, warmup then cosine decay, L2 (or L1+SSIM) loss, gradient clipping.

Frames stay uint8 on the device and become float one batch at a time. The frame order of each epoch is
a pure function of (seed, epoch) and the learning rate a pure function of the step and the planned epochs,
so a checkpoint taken at any step resumes to the same result as a run straight through. With a time budget
(`FitConfig.time`) the planned epochs follow the measured pace (dnervcodec.timeplan): such a run ends on
time, but is not reproducible.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import Checkpointer, StopAtStepBoundary, frames_digest
from .device import resolve_device
from .errors import ConfigError, FitInterrupted
from .metrics import gaussian_window, psnr_from_mse, ssim_parts
from .models.dnerv import DNeRV, ModelConfig, frame_differences
from .options import DEFAULT_LR
from .progress import Progress, progress_stage
from .timeplan import PROBE_STEPS, PROBE_WARM_STEPS, Pace, TimeBudget


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 300  # with a time budget, the first plan: re-planned as the run goes
    lr: float = DEFAULT_LR  # HNeRV uses 1e-3, the DNeRV paper 5e-4 with betas (0.5, 0.999); docs/rd.md
    betas: tuple[float, float] = (0.9, 0.999)
    warmup: float = 0.2  # fraction of the steps spent warming up linearly
    batch_size: int = 1
    loss: str = "l2"  # or "l1ssim": 0.7 * L1 + 0.3 * (1 - SSIM), as NeRV
    clip_grad: float = 1.0  # max gradient norm; 0 turns clipping off
    seed: int = 0
    checkpoint_minutes: float = 5.0
    time: TimeBudget | None = None  # plan the epochs of the stage named like the loop to end by time.deadline

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or not 0 <= self.warmup < 1:
            raise ConfigError("fit: epochs and batch size must be >= 1, lr > 0 and 0 <= warmup < 1")
        if self.loss not in ("l2", "l1ssim"):
            raise ConfigError(f"fit: unknown loss '{self.loss}' (choose l2 or l1ssim)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(self.betas)
        d["time"] = None if self.time is None else self.time.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FitConfig":
        d = dict(d)
        d["betas"] = tuple(d["betas"])
        d["time"] = None if d.get("time") is None else TimeBudget.from_dict(d["time"])
        return cls(**d)

    def identity(self) -> dict:
        """The settings a checkpoint must match to be resumed. With a time budget the epochs are a plan that
        changes as the run goes, so the seconds asked count instead."""
        d = self.to_dict()
        if self.time is not None:
            del d["epochs"]
            d["time"] = self.time.seconds
        return d


@dataclass
class FitResult:
    model: DNeRV
    per_frame_psnr: np.ndarray  # float model, encoders included, after the last epoch
    history: list[dict] = field(default_factory=list)  # one entry per epoch: epoch, loss, psnr, seconds
    seconds: float = 0.0

    @property
    def psnr(self) -> float:
        return float(self.per_frame_psnr.mean())

    @property
    def epochs(self) -> int:
        """Epochs run (with a time budget, as many as the plan came to)."""
        return len(self.history)


def learning_rate(cfg: FitConfig, step: int, total_steps: int) -> float:
    """Linear warmup over the first `warmup` of the steps, then cosine decay to zero."""
    warm = int(cfg.warmup * total_steps)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    progress = (step - warm) / max(1, total_steps - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def ssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """1 - SSIM (11x11 Gaussian window), for the L1+SSIM option; the same SSIM as the metric."""
    return 1 - ssim_parts(x, y, gaussian_window(like=x))[0].mean()


def reconstruction_loss(kind: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if kind == "l2":
        return F.mse_loss(out, target)
    return 0.7 * F.l1_loss(out, target) + 0.3 * ssim_loss(out, target)


class ClipTensor:
    """A clip held as uint8 [T,3,H,W] on the device; hands out float batches and their frame differences."""

    def __init__(self, frames: np.ndarray, device: torch.device) -> None:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ConfigError("frames must be uint8 [T, H, W, 3]")
        # [T,H,W,3] viewed as [T,3,H,W] is already channels-last, the layout oneDNN convolutions run fastest in.
        self.data = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(device)
        self.num_frames = self.data.shape[0]

    def _float(self, idx: torch.Tensor) -> torch.Tensor:
        return self.data[idx].float().div_(255.0).contiguous(memory_format=torch.channels_last)

    def batch(self, idx: torch.Tensor, with_diff: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        cur = self._float(idx)
        if not with_diff:
            return cur, None
        prev = self._float((idx - 1).clamp_min(0))
        nxt = self._float((idx + 1).clamp_max(self.num_frames - 1))
        return cur, frame_differences(prev, cur, nxt)


def epoch_order(seed: int, epoch: int, num_frames: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_frames, generator=g)


@torch.no_grad()
def clip_psnr(predict: Callable[[torch.Tensor], torch.Tensor], clip: ClipTensor, batch_size: int = 4) -> np.ndarray:
    """Per-frame PSNR of predict(frame indices) against the clip's frames, batch by batch."""
    out = []
    for start in range(0, clip.num_frames, batch_size):
        idx = torch.arange(start, min(start + batch_size, clip.num_frames), device=clip.data.device)
        cur, _ = clip.batch(idx, False)
        mse = (predict(idx).clamp(0, 1) - cur).pow(2).flatten(1).mean(1)
        out.append(psnr_from_mse(mse.double().cpu()))
    return torch.cat(out).numpy()


def evaluate(model: DNeRV, clip: ClipTensor, batch_size: int = 4) -> np.ndarray:
    """Per-frame PSNR of the float model (encoders included) over the whole clip."""
    with_diff = model.diff_encoder is not None
    model.eval()
    try:
        return clip_psnr(lambda idx: model(*clip.batch(idx, with_diff)), clip, batch_size)
    finally:
        model.train()


StepFn = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]
Penalty = Callable[[], "tuple[torch.Tensor, dict]"]


def _step(module: nn.Module, optim: torch.optim.Optimizer, forward: StepFn, idx: torch.Tensor, cfg: FitConfig,
          penalty: Penalty | None, where: str) -> tuple[float, float, dict]:
    """One optimizer step on frames `idx`: (loss, mean squared error of the output, the penalty's numbers).
    A loss that is not finite is an error that starts with `where` ('fit diverged at epoch 3')."""
    out, target = forward(idx)
    loss = reconstruction_loss(cfg.loss, out, target)
    shown: dict = {}
    if penalty is not None:
        extra, shown = penalty()
        loss = loss + extra
    loss_value = float(loss.detach())
    if not math.isfinite(loss_value):
        raise ConfigError(f"{where} (loss {loss_value}): lower --lr")
    optim.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.clip_grad > 0:
        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.clip_grad)
    optim.step()
    with torch.no_grad():
        sq_err = float((out.detach() - target).pow(2).mean())
    return loss_value, sq_err, shown


def train(
    module: nn.Module,
    forward: StepFn,
    num_frames: int,
    cfg: FitConfig,
    device: torch.device,
    run_dir: str | os.PathLike | None,
    identity: dict,
    resume: bool = False,
    progress: bool | Progress = True,
    stop_after_steps: int | None = None,
    desc: str = "fit",
    param_groups: list[dict] | None = None,
    penalty: Penalty | None = None,
) -> tuple[list[dict], float]:
    """The training loop every fit shares: epochs over shuffled frames, Adam with warmup + cosine, clipping,
    one progress stage, checkpoints, Ctrl-C between steps. Returns (history per epoch, seconds).

    `forward(frame indices) -> (output, target)`. The checkpoint (a Checkpointer keyed by `identity`: what
    makes the run this run, e.g. configs and an input digest) holds `module`, the optimizer and where the loop
    stands, the planned epochs included. `param_groups` (each with an `lr_scale`) give parameters their own
    peak learning rate on the same schedule; `penalty()` returns a term added to every step's loss (the rate
    of a rate-distortion fit) and numbers to show on the progress line.

    With a time budget that names this stage (`cfg.time`, stage `desc`) the epochs are re-planned after the
    first PROBE_STEPS timed steps of this call and at every epoch boundary, from the pace measured, so the
    job ends by the budget's deadline; the learning-rate schedule is built for the epochs planned.
    """
    groups = param_groups if param_groups is not None else [{"params": list(module.parameters()), "lr_scale": 1.0}]
    optim = torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas)
    steps_per_epoch = math.ceil(num_frames / cfg.batch_size)
    ckpt = Checkpointer(run_dir, identity, cfg.checkpoint_minutes)
    epochs, epoch, step_in_epoch, history, elapsed_before = cfg.epochs, 0, 0, [], 0.0
    state = ckpt.restore_training(resume, module, optim)
    if state is not None:
        epochs, epoch, step_in_epoch = state["epochs"], state["epoch"], state["step_in_epoch"]
        history, elapsed_before = state["history"], state["seconds"]
    budget = cfg.time if cfg.time is not None and desc in cfg.time.names() else None

    def save(seconds: float) -> None:
        ckpt.save_training(module, optim, {"epochs": epochs, "epoch": epoch, "step_in_epoch": step_in_epoch,
                                           "history": history, "seconds": seconds})

    def replan(bar: Progress) -> None:
        """The epochs that end the job by the budget's deadline at the pace measured so far."""
        nonlocal epochs
        seconds = pace.step_seconds(time.perf_counter())
        if budget is None or seconds is None:
            return
        epochs = budget.epochs(desc, seconds * steps_per_epoch, epoch + step_in_epoch / steps_per_epoch, time.time())
        bar.set_total(steps_per_epoch * epochs)

    start = time.perf_counter()
    pace = Pace(start)
    steps_this_call = 0
    module.train()
    done_before = epoch * steps_per_epoch + step_in_epoch
    with StopAtStepBoundary() as stopper, progress_stage(progress, desc, steps_per_epoch * epochs, done_before) as bar:
        try:
            while epoch < epochs:
                order = epoch_order(cfg.seed, epoch, num_frames).to(device)
                sq_err, n_err, loss_sum, shown = 0.0, 0, 0.0, {}
                while step_in_epoch < steps_per_epoch:
                    if stopper.requested or (stop_after_steps is not None and steps_this_call >= stop_after_steps):
                        raise KeyboardInterrupt
                    global_step = epoch * steps_per_epoch + step_in_epoch
                    for group in optim.param_groups:
                        group["lr"] = group.get("lr_scale", 1.0) * learning_rate(cfg, global_step,
                                                                                  steps_per_epoch * epochs)
                    idx = order[step_in_epoch * cfg.batch_size : (step_in_epoch + 1) * cfg.batch_size]
                    loss_value, step_err, shown = _step(module, optim, forward, idx, cfg, penalty,
                                                        f"{desc} diverged at epoch {epoch + 1}")
                    sq_err += step_err * len(idx)
                    n_err += len(idx)
                    loss_sum += loss_value * len(idx)
                    step_in_epoch += 1
                    steps_this_call += 1
                    pace.step(time.perf_counter())
                    bar.update(1)
                    if pace.run_steps == PROBE_WARM_STEPS + PROBE_STEPS and step_in_epoch < steps_per_epoch:
                        replan(bar)  # the first steps of this run are the timing probe
                    if ckpt.due():
                        save(elapsed_before + time.perf_counter() - start)
                seconds = elapsed_before + time.perf_counter() - start
                # Frames seen in a partly resumed epoch are not all in these sums; the PSNR is a training estimate.
                record = {
                    "epoch": epoch + 1,
                    "loss": loss_sum / max(1, n_err),
                    "psnr": float(psnr_from_mse(sq_err / max(1, n_err))),
                    "seconds": seconds,
                    **shown,
                }
                history.append(record)
                epoch, step_in_epoch = epoch + 1, 0
                replan(bar)
                if budget is not None:
                    record["planned"] = epochs  # how the plan moved, epoch by epoch
                pace.restart(time.perf_counter())
                bar.update(0, epoch=f"{epoch}/{epochs}", loss=record["loss"], psnr=record["psnr"], **shown)
        except KeyboardInterrupt:
            save(elapsed_before + time.perf_counter() - start)
            raise FitInterrupted(f"{desc} interrupted at epoch {epoch + 1}, step {step_in_epoch}{ckpt.where()}") from None
    seconds = elapsed_before + time.perf_counter() - start
    if not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
        raise ConfigError(f"{desc} diverged in its last step (weights are not finite): lower --lr")
    save(seconds)
    return history, seconds


def fit(
    frames: np.ndarray,
    model_cfg: ModelConfig,
    cfg: FitConfig,
    device: str | torch.device = "auto",
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | Progress = True,
    stop_after_steps: int | None = None,
    init_state: dict | None = None,
    desc: str = "fit",
) -> FitResult:
    """Fit a DNeRV to `frames` (uint8 [T,H,W,3]).

    With a run_dir a checkpoint is written every `checkpoint_minutes`, at the end, and on Ctrl-C (which
    then raises FitInterrupted); `resume=True` continues from it. `stop_after_steps` interrupts the fit
    after that many steps of this call, as Ctrl-C would (used by tests and the resume check).
    `init_state` starts from given weights instead of a fresh init (fine-tuning after pruning).
    """
    device = resolve_device(device)
    T, H, W, _ = frames.shape
    dec = model_cfg.decoder
    if (H, W) != (dec.height, dec.width):
        raise ConfigError(f"model is built for {dec.height}x{dec.width} but the clip is {H}x{W}")
    torch.manual_seed(cfg.seed)
    model = DNeRV(model_cfg)
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device, memory_format=torch.channels_last)
    clip = ClipTensor(frames, device)
    digest = frames_digest(frames)
    with_diff = model.diff_encoder is not None

    def forward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cur, diff = clip.batch(idx, with_diff)
        return model(cur, diff), cur

    identity = {"model_cfg": model_cfg.to_dict(), "fit_cfg": cfg.identity(), "digest": digest}
    history, seconds = train(model, forward, T, cfg, device, run_dir, identity, resume, progress, stop_after_steps,
                             desc)
    return FitResult(model, evaluate(model, clip), history, seconds)


def step_seconds(frames: np.ndarray, model_cfg: ModelConfig, cfg: FitConfig, device: str | torch.device = "auto",
                 steps: int = PROBE_STEPS) -> float:
    """Seconds one training step of a fresh `model_cfg` takes on `frames` (uint8 [T,H,W,3] at the model's size;
    a few are enough): the timing probe that plans or estimates a fit before it starts. The same step as the
    fit's, at learning rate 0; the first PROBE_WARM_STEPS are not timed, then `steps` are."""
    device = resolve_device(device)
    model = DNeRV(model_cfg).to(device, memory_format=torch.channels_last)
    clip = ClipTensor(frames, device)
    optim = torch.optim.Adam(model.parameters(), lr=0.0, betas=cfg.betas)
    with_diff = model.diff_encoder is not None

    def forward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cur, diff = clip.batch(idx, with_diff)
        return model(cur, diff), cur

    pace = Pace(time.perf_counter())
    for i in range(PROBE_WARM_STEPS + steps):
        idx = torch.arange(i * cfg.batch_size, (i + 1) * cfg.batch_size, device=device) % clip.num_frames
        _step(model, optim, forward, idx, cfg, None, "the timing probe diverged")
        pace.step(time.perf_counter())
    return float(pace.step_seconds(time.perf_counter()))
