"""A checkpoint is never deleted by a run that did not finish it: without --resume an earlier run's
checkpoint stops the command with a hint, --restart discards it, and a mismatch names what differs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dnervcodec.checkpoint import check_run_dir, checkpoints_in, config_diff
from dnervcodec.cli import main
from dnervcodec.errors import CheckpointError
from dnervcodec.video import write_video
from tests.conftest import moving_shapes

FIT = ["--size", "20k", "--quiet", "--device", "cpu"]


@pytest.fixture
def clip_file(tmp_path) -> Path:
    return write_video(tmp_path / "clip.mkv", moving_shapes(6, 32, 64))


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def earlier_checkpoint(folder: Path, name: str = "checkpoint.pt") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": 3, "note": "an interrupted run"}, path)
    return path


@pytest.mark.parametrize("command", ["fit", "encode", "encode-prune-stage", "denoise"])
def test_an_earlier_checkpoint_stops_a_run_without_resume_and_is_kept(command, clip_file, tmp_path, capsys):
    if command == "fit":
        args, folder = ["fit", str(clip_file), "-o", str(tmp_path / "run"), *FIT], tmp_path / "run"
        ckpt = earlier_checkpoint(folder)
    elif command == "denoise":
        args, folder = ["denoise", str(clip_file), "-o", str(tmp_path / "d.mkv")], tmp_path / "d.mkv.run"
        ckpt = earlier_checkpoint(folder)
    else:
        args, folder = ["encode", str(clip_file), "-o", str(tmp_path / "o.dnerv"), *FIT], tmp_path / "o.dnerv.run"
        ckpt = earlier_checkpoint(folder / "prune" if command == "encode-prune-stage" else folder)
    before = ckpt.read_bytes()
    code, out, err = run(args, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "--resume to continue it, or --restart to discard it" in err, err
    assert ckpt.read_bytes() == before
    assert not (tmp_path / "o.dnerv").exists() and not (tmp_path / "d.mkv").exists()


def test_resume_without_a_checkpoint_says_so_then_runs(clip_file, tmp_path, capsys):
    code, out, err = run(["fit", str(clip_file), "-o", str(tmp_path / "run"), "--epochs", "1", "--resume", *FIT],
                         capsys)
    assert code == 0, err
    assert err.startswith(f"dnerv fit: note: no checkpoint in {tmp_path / 'run'} to resume: starting from the beginning")


def test_restart_discards_the_checkpoint_and_runs(clip_file, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not even a checkpoint")
    (tmp_path / "run" / "notes.txt").write_text("mine")
    code, out, err = run(["fit", str(clip_file), "-o", str(tmp_path / "run"), "--epochs", "1", "--restart", *FIT],
                         capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"  # only checkpoints are discarded
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["epoch"] == 1


def test_a_mismatch_names_the_options_that_differ(clip_file, tmp_path, capsys):
    folder = str(tmp_path / "run")
    assert run(["fit", str(clip_file), "-o", folder, "--epochs", "1", *FIT], capsys)[0] == 0
    code, out, err = run(["fit", str(clip_file), "-o", folder, "--epochs", "2", "--lr", "2e-3", "--resume", "-y", *FIT],
                         capsys)
    assert code == 2
    err = err.splitlines()[-1]  # after the sizing line that every fit prints
    assert err.startswith("dnerv fit: error: ")
    assert "other settings (checkpoint -> now): epochs 1 -> 2, lr 0.003 -> 0.002;" in err, err
    assert "--restart to discard it" in err
    code, out, err = run(["fit", str(clip_file), "-o", folder, "--epochs", "1", "--start", "1", "--resume", "-y", *FIT],
                         capsys)
    assert code == 2 and "the input frames (another input, --start, --frames or --resolution)" in err, err
    # How often checkpoints are written does not change the run: resuming with another interval is fine.
    code, out, err = run(["fit", str(clip_file), "-o", folder, "--epochs", "1", "--checkpoint-minutes", "1",
                          "--resume", "-y", *FIT], capsys)
    assert code == 0, err


def test_config_diff_flattens_and_limits() -> None:
    old = {"fit_cfg": {"epochs": 1, "betas": (0.9, 0.99), "checkpoint_minutes": 5}, "digest": "a",
           "model_cfg": {"decoder": {"widths": [1, 2, 3]}}}
    new = {"fit_cfg": {"epochs": 2, "betas": [0.9, 0.99], "checkpoint_minutes": 1}, "digest": "b",
           "model_cfg": {"decoder": {"widths": [1, 2, 4]}}}
    assert config_diff(old, new) == ["the input frames (another input, --start, --frames or --resolution)",
                                     "epochs 1 -> 2", "decoder.widths [1, 2, 3] -> [1, 2, 4]"]
    assert config_diff(new, new) == []
    many = config_diff({str(i): i for i in range(9)}, {str(i): -i for i in range(9)})
    assert len(many) == 5 and many[-1] == "4 more"  # '0' matches


def test_check_run_dir_finds_checkpoints_of_every_stage(tmp_path) -> None:
    assert check_run_dir(tmp_path / "none", resume=False, restart=False) is None
    earlier_checkpoint(tmp_path / "denoise", "denoised.pt")
    assert checkpoints_in(tmp_path) == [tmp_path / "denoise" / "denoised.pt"]
    with pytest.raises(CheckpointError, match="--resume"):
        check_run_dir(tmp_path, resume=False, restart=False)
    assert check_run_dir(tmp_path, resume=True, restart=False) is None
    assert check_run_dir(tmp_path, resume=False, restart=True) is None


def test_a_checkpoint_of_an_older_layout_is_refused_with_the_way_out(tmp_path) -> None:
    """Every loop now writes through Checkpointer (the run's key beside the state); a checkpoint without that
    key, as fits wrote before, is not mistaken for a run with other settings."""
    from dnervcodec.checkpoint import Checkpointer

    earlier_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="written by an older dnerv .*; use --restart to discard it"):
        Checkpointer(tmp_path, {"fit_cfg": {"epochs": 3}}).restore(resume=True)
    assert Checkpointer(tmp_path, {"fit_cfg": {"epochs": 3}}).restore(resume=False) is None
