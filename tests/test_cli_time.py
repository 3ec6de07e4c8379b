"""`--time`, `--preset` and the over-an-hour estimate, through the command line: a tiny real encode lands
near its budget, a run planned to take hours says so before it starts, and a timed fit resumes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch  # noqa: F401  (imported before the clock starts, as any earlier test would have)

from dnervcodec import cli
from dnervcodec.cli import build_parser, main
from dnervcodec.video import write_video
from tests.conftest import moving_shapes

SMALL = ["--size", "20k", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mkv", moving_shapes(8, 32, 64))


def test_a_tiny_encode_ends_near_its_time_budget(clip_file, tmp_path, capsys):
    t0 = time.perf_counter()
    code = main(["encode", str(clip_file), "-o", str(tmp_path / "o.dnerv"), "--time", "10s", *SMALL])
    seconds = time.perf_counter() - t0
    out, err = capsys.readouterr()
    assert code == 0, err
    note = err.splitlines()[0]
    assert note.startswith("dnerv encode: note: --time 10 s: ") and "fit + " in note and "rate-distortion epochs" in note
    # The interpreter's exit (cli.EXIT_SECONDS) is kept free, so main() itself ends that much earlier.
    assert 0.6 * (10 - cli.EXIT_SECONDS) < seconds < 1.3 * 10, seconds
    assert "of --time 10 s" in out


def test_a_run_expected_to_take_hours_says_so_before_it_starts(clip_file, tmp_path, capsys, monkeypatch):
    """The estimate comes from the timing probe (faked here at 100 s a step: 3 epochs of 8 steps is 40 min,
    5 epochs 67 min); the fit itself then runs at its real, tiny speed."""
    import dnervcodec.fit

    monkeypatch.setattr(dnervcodec.fit, "step_seconds", lambda *a, **k: 100.0)
    run = ["fit", str(clip_file), "-o", str(tmp_path / "run"), *SMALL]
    assert main([*run, "--epochs", "3"]) == 0
    assert "will take about" not in capsys.readouterr().err
    assert main([*run, "--epochs", "5", "--restart", "-y"]) == 0
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if "will take about" in line]
    assert len(notes) == 1 and notes[0].startswith("dnerv fit: note: this fit will take about ")
    assert "(5 fit epochs at 13.3 min a fit epoch)" in notes[0]
    for option in ("--time", "--epochs", "--preset fast", "--resolution", "--frames"):
        assert option in notes[0]


def test_time_notes() -> None:
    """The one line a timed or long run prints: the plan, what cannot be met, or the long estimate."""
    args = build_parser().parse_args(["encode", "x.mkv", "-o", "x.dnerv", "--time", "20m"])
    epochs = [("fit", 30), ("rd", 8)]
    assert cli._time_note(args, epochs, 30.0, 1150.0) == ("--time 20.0 min: 30 fit + 8 rate-distortion epochs at "
                                                          "30 s a fit epoch, re-planned as the run goes")
    short = cli._time_note(args, [("fit", 1), ("rd", 1)], 3000.0, 8000.0)
    assert short == ("--time 20.0 min is too short for this clip: the least work, 1 fit + 1 rate-distortion epochs "
                     "at 50.0 min a fit epoch, takes about 2.2 h; a smaller --resolution or fewer --frames shortens it")
    args.time = 7200.0
    long = cli._time_note(args, epochs, 200.0, 7100.0)
    assert "re-planned as the run goes; about 118.3 min in all: a smaller --time" in long
    args.time = None
    assert cli._time_note(args, epochs, 60.0, 3000.0) is None
    assert cli._time_note(args, epochs, 130.0, 5000.0).startswith("this encode will take about 83.3 min (30 fit + 8 ")


@pytest.mark.parametrize("extra,epochs", [([], 120), (["--preset", "fast"], 40), (["--preset", "paper"], 300),
                                          (["--epochs", "7"], 7), (["--time", "5m"], 120)])
def test_presets_name_epoch_counts(extra, epochs) -> None:
    args = build_parser().parse_args(["encode", "x.mkv", "-o", "x.dnerv", *extra])
    assert cli._epochs(args) == epochs


def test_a_timed_fit_resumes_with_the_epochs_its_checkpoint_planned(clip_file, tmp_path, capsys):
    run = ["fit", str(clip_file), "-o", str(tmp_path / "run"), *SMALL]
    assert main([*run, "--time", "6s"]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    # The finished fit's checkpoint is in the run folder: resuming it has nothing left to train, whatever the
    # timing probe of this run would plan.
    assert main([*run, "--time", "6s", "--resume", "-y"]) == 0
    capsys.readouterr()
    resumed = json.loads((tmp_path / "run" / "report.json").read_text())
    assert resumed["fit"]["epochs"] == report["fit"]["epochs"] > 1
    assert resumed["history"] == report["history"]
    assert main([*run, "--time", "7s", "--resume", "-y"]) == 2
    assert "time 6.0 -> 7.0" in capsys.readouterr().err
