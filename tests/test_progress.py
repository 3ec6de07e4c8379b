"""The progress line shared by the stages of a job, and the checkpoint helper behind every resumable loop."""

from __future__ import annotations

import sys
import time

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
        assert bar.open
    assert not bar.open


def lines_of(err: str) -> list[str]:
    """What a terminal or a log shows: every redraw (after a carriage return) and every line."""
    return [part.strip() for line in err.split("\n") for part in line.split("\r") if part.strip()]


@pytest.mark.parametrize("terminal", [False, True])
def test_each_stage_ends_on_a_line_of_its_own_and_a_resume_never_gives_a_negative_rate(terminal, capsys,
                                                                                      monkeypatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    display = Progress(enabled=True, stages=["fit", "prune", "denoise nlm"])
    with progress_stage(display, "fit", 100, initial=60) as bar:  # resumed at step 60
        for _ in range(40):
            bar.update(1, loss=0.01)
            time.sleep(0.002)
    with progress_stage(display, "prune", 50) as bar:
        for _ in range(50):
            bar.update(1)
            time.sleep(0.002)
    with progress_stage(display, "denoise nlm", 6) as bar:  # a short stage, as nlm on a small clip
        for _ in range(6):
            bar.update(1)
    display.close()
    shown = lines_of(capsys.readouterr().err)
    assert not any("-" in line.split("|")[-1] for line in shown), shown  # no "<-00:00", no "-170760.47step/s"
    finals = [line for line in shown if "100%" in line]
    assert [line.split(":")[0] for line in finals] == ["[1/3] fit", "[2/3] prune", "[3/3] denoise nlm"]
    assert "100/100" in finals[0] and "50/50" in finals[1] and "6/6" in finals[2]
    if not terminal:  # a log gets exactly one line per short stage
        assert shown == finals


@pytest.mark.parametrize("terminal", [True, False])
def test_a_replanned_stage_ends_at_its_new_total(terminal, capsys, monkeypatch) -> None:
    """A time budget moves a stage's end while it runs: the line then ends at the new total, at 100%."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    display = Progress(enabled=True, stages=["fit"])
    with progress_stage(display, "fit", 100) as bar:
        bar.update(30)
        bar.set_total(40)
        assert bar.total == 40
        bar.update(10)
    display.close()
    final = [line for line in lines_of(capsys.readouterr().err) if "100%" in line]
    assert len(final) == 1 and "40/40" in final[0], final


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


def test_encode_with_nlm_shows_each_stage_once_and_complete(tmp_path, capsys) -> None:
    """Issue 17: `encode --denoise nlm` printed its denoise line twice and never reached 100%."""
    from dnervcodec.cli import main
    from dnervcodec.video import write_video
    from tests.conftest import moving_shapes

    clip = write_video(tmp_path / "clip.mkv", moving_shapes(6, 32, 64))
    code = main(["encode", str(clip), "--denoise", "nlm", "--sigma", "5", "--size", "20k", "--epochs", "1",
                 "--device", "cpu", "-o", str(tmp_path / "out.dnerv")])
    err = capsys.readouterr().err
    assert code == 0, err
    shown = lines_of(err)
    assert [line for line in shown if line.startswith("[")] == [
        line for line in shown if "100%" in line], shown  # a log line per stage, at its end
    assert [line.split(":")[0] for line in shown if line.startswith("[")] == ["[1/2] denoise nlm", "[2/2] fit"]
    assert "6/6" in shown[0] and "step/s" in shown[0]


def test_one_line_for_segments_counts_planned_steps_resumes_and_reruns():
    from dnervcodec.progress import ForwardProgress, SegmentsProgress

    display = Progress(enabled=False)
    line = SegmentsProgress(display, "2 segments", {0: {"fit": 10, "rd": 2}, 1: {"fit": 10, "rd": 2}})
    assert (display.label, display.total, display.done) == ("2 segments", 24, 0)
    job = ForwardProgress(line, 1, every=0.0)
    job.stage("fit", 12, initial=4)  # its real total replaces the plan; a resumed stage's steps count as done
    assert (display.total, display.done) == (26, 4)
    job.update(3)
    job.update(1, loss=0.5, psnr=20.0)
    assert display.done == 8 and "segment=1 fit" in display.postfix and "psnr=20" in display.postfix
    job.stage("fit", 12, initial=6)  # the same job again (a retried task), resumed from its checkpoint at 6
    assert (display.total, display.done) == (26, 6)
    line.segment_done(1)  # it skipped its planned rd stage: those steps leave the total
    assert display.total == 24 and "done=1/2" in display.postfix
