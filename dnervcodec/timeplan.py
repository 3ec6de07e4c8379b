"""Time budgets for training: how many epochs fit in the time left, from the pace measured so far.

`dnerv encode --time 20m` must end within 20 minutes on whatever machine runs it. The stages of an encode
(the fit, an optional pruning fine-tune, the rate-distortion fine-tune) are each a number of epochs, and an
epoch's cost is only known once it runs. So the plan is made from measurements and made again as they change:

- before the fit, a few training steps of the real model on the real (padded) frames give the seconds an
  epoch takes, and :func:`plan_epochs` picks the epochs of every stage;
- during the run each stage re-plans its own epochs (and, for the stages after it, their share) after its
  first steps and at every epoch boundary, from the pace it measured (:meth:`TimeBudget.epochs`), so that the
  end stays on target when other jobs slow the machine down or leave it.

Everything here is arithmetic on numbers the caller measures (no torch, no clock unless passed in), so a
per-segment fit can plan its share of a budget the same way. What follows from re-planning: the epochs, the
learning-rate schedule built for them, and so the file, depend on the machine's speed during the run.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from .errors import ConfigError

MAX_EPOCHS = 100_000  # the most a plan gives one stage: a sanity bound, far beyond any useful fit
PROBE_WARM_STEPS = 2  # the first steps of a run are slower (allocations, kernel selection): not timed
PROBE_STEPS = 10  # a stage re-plans once this many steps of a run have been timed, then at each epoch boundary
PACE_WEIGHT = 0.5  # the weight of the last epoch's pace against the epochs before it

# Calibrated on Bunny 160x320 (132 frames, batch 1, 1 thread, a shared machine; docs/fitting.md, "A time
# budget"): one epoch of rate-distortion fine-tuning costs this many fit epochs (it has no encoders, but
# computes the rate of every stored tensor twice a step: 1.2-1.5 measured), and the work between stages, in
# epochs of the stage before it. Each stage corrects its own epoch cost once it runs; the work after the
# last stage is not corrected, so it is what a budget's end can be off by.
EPOCH_COST = {"fit": 1.0, "prune": 1.0, "rd": 1.4, "qat": 1.0}
AFTER_EPOCHS = {
    "fit": 0.3,  # encode: PSNR of the fitted model, the embeddings, the quantized PSNR before fine-tuning
    "prune": 0.3,  # the same after the pruned model's fine-tune
    "rd": 0.2,  # quantized PSNR after, entropy coding, writing, the command's decoding check
    "qat": 0.2,
}
FIT_ONLY_AFTER = 0.15  # `dnerv fit`: the fitted model's PSNR and the saved files


@dataclass(frozen=True)
class Stage:
    """One training stage of a budgeted job, as the planner sees it."""

    name: str  # as the training loop names it: fit, prune, rd or qat
    share: float  # its epochs per epoch of the first stage (dnerv encode: fit 1, rd and prune 1/4)
    cost: float  # seconds of one of its epochs per second of a first-stage epoch, until it measures its own
    after: float  # the work between its last step and the next stage (or the end), in its own epochs


def stage(name: str, share: float = 1.0, after: float | None = None) -> Stage:
    """A stage with the calibrated cost and after-work of its kind."""
    return Stage(name, share, EPOCH_COST[name], AFTER_EPOCHS[name] if after is None else after)


def work_seconds(epochs: Sequence[int], epoch_seconds: Sequence[float], after: Sequence[float],
                 done: float = 0.0) -> float:
    """Seconds of work left: the first stage's epochs beyond the `done` ones, every later stage's epochs, and
    the work after each stage (`after`, in epochs of that stage)."""
    return sum((e - (done if i == 0 else 0.0) + a) * s
               for i, (e, s, a) in enumerate(zip(epochs, epoch_seconds, after)))


def plan_epochs(seconds_left: float, epoch_seconds: Sequence[float], shares: Sequence[float],
                after: Sequence[float], done: float = 0.0, most: int = MAX_EPOCHS) -> tuple[int, ...]:
    """The epochs of each stage whose work (:func:`work_seconds`) ends nearest to `seconds_left` from now.

    The first stage is under way with `done` epochs behind it; it gets at least the epoch it is in (at least
    1) and at most `most`. Each later stage gets `shares[i]` times the first's epochs, at least 1. When even
    the least work takes longer than `seconds_left`, the least work is the plan: the caller says so.
    """
    if not all(s > 0 for s in epoch_seconds):
        raise ValueError("epoch seconds must be positive")
    least = max(1, math.ceil(done - 1e-9))

    def epochs(first: int) -> tuple[int, ...]:
        return (first, *(max(1, round(first * s)) for s in shares[1:]))

    def seconds(first: int) -> float:
        return work_seconds(epochs(first), epoch_seconds, after, done)

    if most <= least or seconds(least) >= seconds_left:
        return epochs(least)
    if seconds(most) <= seconds_left:
        return epochs(most)
    lo, hi = least, most  # seconds(lo) < seconds_left < seconds(hi): bisect to neighbours
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if seconds(mid) <= seconds_left else (lo, mid)
    return epochs(min((lo, hi), key=lambda e: abs(seconds(e) - seconds_left)))


@dataclass(frozen=True)
class TimeBudget:
    """A job's time budget: the stages to plan, and when the job must end.

    `seconds` is what was asked (it belongs to a run's identity: resuming with another --time is refused);
    `deadline` is the wall-clock time (time.time()) by which the job should have ended, which differs on
    every start and is not part of the identity.
    """

    seconds: float
    deadline: float
    stages: tuple[Stage, ...]

    def __post_init__(self) -> None:
        if not self.seconds > 0 or not self.stages:
            raise ConfigError("a time budget needs seconds > 0 and at least one stage")

    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def plan(self, name: str, epoch_seconds: float, done: float, now: float) -> tuple[int, ...]:
        """Epochs of stage `name` and of every stage after it, from the seconds an epoch of `name` takes now."""
        rest = self.stages[self.names().index(name):]
        head = rest[0]
        return plan_epochs(self.deadline - now, [epoch_seconds * s.cost / head.cost for s in rest],
                           [s.share / head.share for s in rest], [s.after for s in rest], done)

    def epochs(self, name: str, epoch_seconds: float, done: float, now: float) -> int:
        """The epochs stage `name` should run in all, `done` of them behind it."""
        return self.plan(name, epoch_seconds, done, now)[0]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TimeBudget":
        return cls(d["seconds"], d["deadline"], tuple(Stage(**s) for s in d["stages"]))


class Pace:
    """Seconds per step, as the plan should assume them: a running average over epochs (each epoch weighs
    PACE_WEIGHT against the ones before), so one epoch slowed by another job moves the plan by half as much,
    and a lasting change moves it within a few epochs. The first PROBE_WARM_STEPS of a run, slower than the
    rest, are left out. The caller passes the times, so it can be tested without a clock."""

    def __init__(self, now: float) -> None:
        self.run_steps = 0  # steps of this run (session) so far
        self._start, self._steps = now, 0  # the window: steps timed since the last epoch boundary
        self._average: float | None = None  # over the windows before it

    def step(self, now: float) -> None:
        self.run_steps += 1
        if self.run_steps <= PROBE_WARM_STEPS:
            self._start = now
        else:
            self._steps += 1

    def restart(self, now: float) -> None:
        """At an epoch boundary: the epoch just timed joins the average, and a new window starts."""
        self._average = self.step_seconds(now)
        self._start, self._steps = now, 0

    def step_seconds(self, now: float) -> float | None:
        """Seconds per step: the average with the current window's steps weighed in; None before any timed step."""
        window = (now - self._start) / self._steps if self._steps else None
        if self._average is None or window is None:
            return window if window is not None else self._average
        return self._average + PACE_WEIGHT * (window - self._average)
