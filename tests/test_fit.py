import math

import numpy as np
import pytest
import torch

from dnervcodec.errors import CheckpointError, FitInterrupted
from dnervcodec.fit import FitConfig, fit, learning_rate
from dnervcodec.models.dnerv import build_config

CFG = FitConfig(epochs=20, lr=5e-3, seed=1, batch_size=2)


def small_model(clip, use_diff=True):
    return build_config(clip.shape[1], clip.shape[2], 16, use_diff=use_diff)


@pytest.mark.parametrize("use_diff", [True, False])
def test_fit_learns_the_clip(clip, use_diff):
    result = fit(clip, small_model(clip, use_diff), CFG, "cpu", progress=False)
    assert result.per_frame_psnr.shape == (clip.shape[0],)
    first, last = result.history[0]["psnr"], result.history[-1]["psnr"]
    assert last > first + 3, (first, last)
    assert result.psnr > 16


def test_same_seed_same_model(clip):
    a = fit(clip, small_model(clip), FitConfig(epochs=2, seed=3), "cpu", progress=False)
    b = fit(clip, small_model(clip), FitConfig(epochs=2, seed=3), "cpu", progress=False)
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k


def test_interrupted_fit_resumes_to_the_same_result(clip, tmp_path):
    model_cfg = small_model(clip)
    straight = fit(clip, model_cfg, CFG, "cpu", progress=False)
    with pytest.raises(FitInterrupted, match="--resume"):
        fit(clip, model_cfg, CFG, "cpu", run_dir=tmp_path, progress=False, stop_after_steps=37)
    assert (tmp_path / "checkpoint.pt").exists()
    resumed = fit(clip, model_cfg, CFG, "cpu", run_dir=tmp_path, resume=True, progress=False)
    assert abs(resumed.psnr - straight.psnr) < 0.1
    np.testing.assert_allclose(resumed.per_frame_psnr, straight.per_frame_psnr, atol=1e-3)


def test_resume_refuses_other_settings(clip, tmp_path):
    model_cfg = small_model(clip)
    with pytest.raises(FitInterrupted):
        fit(clip, model_cfg, CFG, "cpu", run_dir=tmp_path, progress=False, stop_after_steps=2)
    with pytest.raises(CheckpointError, match="other settings .*: epochs 20 -> 7, lr 0.005 -> 0.003, batch_size 2 -> 1"):
        fit(clip, model_cfg, FitConfig(epochs=7), "cpu", run_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="the input frames"):
        fit(clip[::-1].copy(), model_cfg, CFG, "cpu", run_dir=tmp_path, resume=True, progress=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read"):
        fit(clip, model_cfg, CFG, "cpu", run_dir=tmp_path, resume=True, progress=False)


def test_learning_rate_warms_up_then_decays():
    cfg = FitConfig(epochs=10, lr=1e-3, warmup=0.2)
    lrs = [learning_rate(cfg, s, 100) for s in range(100)]
    assert lrs[0] < lrs[10] < lrs[19] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(lrs[20:], lrs[21:]))
    assert lrs[-1] < 1e-5
    assert math.isclose(max(lrs), 1e-3)


def test_l1ssim_loss_option_fits(clip):
    result = fit(clip, small_model(clip), FitConfig(epochs=3, lr=3e-3, loss="l1ssim"), "cpu", progress=False)
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_ctrl_c_stops_between_steps_and_leaves_a_checkpoint(clip, tmp_path):
    """A real SIGINT in the middle of a fit stops it at the next step boundary with a checkpoint, and the
    SIGINT handler that was there before comes back: Python's default in a terminal, SIG_IGN in a background
    job (`cmd &` starts with SIGINT ignored), so the test compares with what it found, not with the default."""
    import os
    import signal

    from dnervcodec.progress import Progress

    class CtrlCAfter(Progress):
        """Sends the process a SIGINT after `n` steps, from inside the loop: no timer racing the fit's start."""

        def __init__(self, n: int) -> None:
            super().__init__(enabled=False)
            self.left = n

        def update(self, n: int = 1, **postfix: object) -> None:
            self.left -= n
            if self.left == 0:
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    model_cfg = small_model(clip)
    long_fit = FitConfig(epochs=10_000, lr=5e-3, seed=1, batch_size=2)
    with pytest.raises(FitInterrupted, match="--resume"):
        fit(clip, model_cfg, long_fit, "cpu", run_dir=tmp_path, progress=CtrlCAfter(3))
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3)  # the step under way when Ctrl-C came was finished
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


def test_a_diverging_fit_is_an_error_not_a_nan_psnr() -> None:
    """A learning rate that blows the weights up ends as one clear error (exit 2 in the CLI), not 'PSNR nan'."""
    from dnervcodec.errors import ConfigError
    from dnervcodec.fit import FitConfig, fit
    from dnervcodec.models.sizing import size_model
    from tests.conftest import moving_shapes

    frames = moving_shapes(4, 32, 64)
    with pytest.raises(ConfigError, match="diverged.*lower --lr"):
        fit(frames, size_model(32, 64, 4, 20_000).config, FitConfig(epochs=3, lr=1e30, clip_grad=0), "cpu",
            progress=False)


def test_a_timed_fit_checkpoints_its_planned_epochs_and_resumes_with_them(clip, tmp_path):
    """With a time budget the epochs are a plan: the checkpoint records it, a resumed run continues with it (its
    first plan and deadline are new, and are no part of the run's identity), and only other seconds are refused."""
    import time

    from dnervcodec.checkpoint import recorded_seconds
    from dnervcodec.timeplan import TimeBudget, stage

    def budget(seconds: float) -> TimeBudget:
        return TimeBudget(seconds, time.time() + seconds, (stage("fit", after=0.0),))

    model_cfg = small_model(clip)
    with pytest.raises(FitInterrupted):  # 8 steps an epoch: the plan is made at the first epoch boundary
        fit(clip, model_cfg, FitConfig(epochs=3, lr=5e-3, time=budget(3600.0)), "cpu", run_dir=tmp_path,
            progress=False, stop_after_steps=10)
    first = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert first["epochs"] > 100 and (first["epoch"], first["step_in_epoch"]) == (1, 2)  # an hour of tiny epochs
    assert recorded_seconds(tmp_path) == pytest.approx(first["seconds"]) and first["seconds"] > 0
    with pytest.raises(FitInterrupted):
        fit(clip, model_cfg, FitConfig(epochs=5, lr=5e-3, time=budget(3600.0)), "cpu", run_dir=tmp_path,
            resume=True, progress=False, stop_after_steps=1)
    again = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert again["epochs"] == first["epochs"] and again["step_in_epoch"] == 3
    with pytest.raises(CheckpointError, match="time 3600.0 -> 1800.0"):
        fit(clip, model_cfg, FitConfig(epochs=3, lr=5e-3, time=budget(1800.0)), "cpu", run_dir=tmp_path,
            resume=True, progress=False)


def test_a_timed_fit_ends_near_its_deadline(clip):
    """The loop re-plans from its own pace: a fit given 4 s ends within a generous margin of them."""
    import time

    from dnervcodec.timeplan import TimeBudget, stage

    t0 = time.time()
    cfg = FitConfig(epochs=1, lr=5e-3, time=TimeBudget(4.0, t0 + 4.0, (stage("fit", after=0.0),)))
    result = fit(clip, small_model(clip), cfg, "cpu", progress=False)
    seconds = time.time() - t0
    assert result.epochs > 1 and 2.5 < seconds < 6.0, (result.epochs, seconds)
