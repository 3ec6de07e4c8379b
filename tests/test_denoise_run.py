"""The training run the learned denoisers share: a checkpoint holds it exactly and loads with weights_only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dnervcodec.denoise.run import ARRAY, RNG, TrainingRun


@dataclass(kw_only=True)
class _Example(TrainingRun):
    rng: np.random.Generator = field(metadata=RNG)
    frames: np.ndarray | None = field(default=None, metadata=ARRAY)
    average: torch.Tensor


def test_a_run_survives_a_weights_only_checkpoint(tmp_path) -> None:
    run = _Example(rng=np.random.default_rng(7), frames=np.arange(6, dtype=np.uint8).reshape(2, 3),
                   average=torch.ones(2), step=5, history=[0.5, 0.25])
    run.rng.integers(0, 10, 3)  # the sampler has moved on: its state, not its seed, must come back
    torch.save(run.state(), tmp_path / "c.pt")
    back = _Example.from_state(torch.load(tmp_path / "c.pt", weights_only=True))
    assert (back.step, back.history, back.position()) == (5, [0.5, 0.25], "at step 5")
    assert np.array_equal(back.frames, run.frames) and torch.equal(back.average, run.average)
    assert back.rng.integers(0, 1 << 30, 4).tolist() == run.rng.integers(0, 1 << 30, 4).tolist()
    back.history.append(1.0)
    assert run.history == [0.5, 0.25]  # a copy, not the list the checkpoint was made from
    assert _Example.from_state(_Example(rng=np.random.default_rng(0), average=torch.zeros(1)).state()).frames is None
