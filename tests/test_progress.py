"""The progress line shared by the stages of a job, and the checkpoint helper behind every resumable loop."""

from __future__ import annotations

import pytest
import torch

from dnervcodec.checkpoint import Checkpointer
from dnervcodec.errors import CheckpointError
from dnervcodec.progress import Progress, progress_stage


def test_stages_share_one_bar_and_are_numbered() -> None:
    display = Progress(enabled=False, stages=["denoise stbn", "fit"])
    with progress_stage(display, "denoise stbn", 10) as bar:
        assert bar is display, "a stage on a given line reuses it"
        bar.update(3, loss=0.01234567, pass_="1/2")
        assert (bar.label, bar.done, bar.total) == ("[1/2] denoise stbn", 3, 10)
        assert bar.postfix == "loss=0.01235, pass_=1/2"
    with progress_stage(display, "fit", 50, initial=20) as bar:
        assert (bar.label, bar.done, bar.total, bar.postfix) == ("[2/2] fit", 20, 50, "")
    with progress_stage(display, "qat", 5) as bar:
        assert bar.label == "qat"  # a stage outside the plan is shown by name only
    display.close()


def test_an_enabled_line_draws_on_stderr(capsys) -> None:
    display = Progress(enabled=True, stages=["fit"])
    with progress_stage(display, "fit", 4) as bar:
        bar.update(4, psnr=27.5)
    display.close()
    err = capsys.readouterr().err
    assert "[1/1] fit" in err and "psnr=27.5" in err


def test_a_bool_gets_a_bar_of_its_own_that_is_closed() -> None:
    with progress_stage(True, "fit", 4) as bar:
        bar.update(4)
        assert bar._bar is not None
    assert bar._bar is None


def test_checkpointer_refuses_another_runs_checkpoint(tmp_path) -> None:
    ckpt = Checkpointer(tmp_path, {"options": {"iters": 10}, "digest": "abc"})
    assert ckpt.restore(resume=True) is None  # nothing saved yet
    ckpt.save({"step": 3, "w": torch.ones(2)})
    assert ckpt.restore(resume=True)["step"] == 3
    assert ckpt.restore(resume=False) is None
    other = Checkpointer(tmp_path, {"options": {"iters": 11}, "digest": "abc"})
    with pytest.raises(CheckpointError, match="other settings"):
        other.restore(resume=True)
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="--restart to discard it"):
        ckpt.restore(resume=True)
    assert Checkpointer(None, {}).restore(resume=True) is None and not Checkpointer(None, {}).due()
