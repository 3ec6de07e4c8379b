"""What the learned denoisers (STBN, VDP) share: a resumable training run and its Ctrl-C handling.

Both fit a fresh network to the clip they denoise, for minutes. A :class:`TrainingRun` is where such a fit
stands (step, losses, and each denoiser's own fields); :class:`Session` restores it from a checkpoint, turns
the first Ctrl-C into a checkpoint and a :class:`DenoiseInterrupted` at the next step boundary, and saves
periodically, so both denoisers stop, save and resume the same way.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Iterator, TypeVar

import numpy as np
import torch

from dnervcodec.checkpoint import Checkpointer, StopAtStepBoundary
from dnervcodec.errors import DenoiseInterrupted
from dnervcodec.progress import Progress, progress_stage

R = TypeVar("R", bound="TrainingRun")


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def _rng_from_state(state: dict) -> np.random.Generator:
    rng = np.random.default_rng()
    rng.bit_generator.state = state
    return rng


# Field metadata for values a checkpoint cannot hold as they are (torch.load(weights_only=True) reads tensors,
# numbers, strings and plain containers only).
RNG = {"save": _rng_state, "load": _rng_from_state}
ARRAY = {"save": lambda a: None if a is None else torch.from_numpy(a),
         "load": lambda t: None if t is None else t.numpy()}


@dataclass(kw_only=True)
class TrainingRun:
    """Where a denoiser's training stands. Subclasses add fields; a field whose value a checkpoint cannot hold
    as is names its converters in `metadata` (RNG, ARRAY). Checkpointed as a dict of the fields, so a resumed
    run continues exactly where it stopped."""

    step: int = 0
    history: list = field(default_factory=list)

    def state(self) -> dict:
        return {f.name: f.metadata.get("save", _copy)(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_state(cls: type[R], state: dict) -> R:
        return cls(**{f.name: f.metadata.get("load", _copy)(state[f.name]) for f in fields(cls)})

    def position(self) -> str:
        """Where the run stopped, for the interrupt message."""
        return f"at step {self.step}"


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


class Session:
    """One learned denoiser's training run: restored from `ckpt` when resuming, saved on Ctrl-C and when due."""

    def __init__(self, name: str, ckpt: Checkpointer, net: torch.nn.Module, opt: torch.optim.Optimizer,
                 fresh: TrainingRun, resume: bool) -> None:
        self.name, self.ckpt, self.net, self.opt = name, ckpt, net, opt
        state = ckpt.restore_training(resume, net, opt)
        self.run = fresh if state is None else type(fresh).from_state(state)
        self._stopper: StopAtStepBoundary | None = None

    @contextmanager
    def steps(self, progress: bool | Progress, total: int, done: int) -> Iterator[Progress]:
        """The progress stage of the training; Ctrl-C inside it ends as a checkpoint and DenoiseInterrupted."""
        with StopAtStepBoundary() as self._stopper, \
                progress_stage(progress, f"denoise {self.name}", total, done) as bar:
            try:
                yield bar
            except KeyboardInterrupt:
                self.save()
                raise DenoiseInterrupted(f"{self.name} interrupted {self.run.position()}{self.ckpt.where()}") from None

    def check_stop(self) -> None:
        """Call before each step: a Ctrl-C pressed during the last one stops the run here, between steps."""
        if self._stopper is not None and self._stopper.requested:
            raise KeyboardInterrupt

    def save_if_due(self) -> None:
        """Call after each step: a periodic checkpoint (every `checkpoint_minutes`)."""
        if self.ckpt.due():
            self.save()

    def save(self) -> None:
        self.ckpt.save_training(self.net, self.opt, self.run.state())
