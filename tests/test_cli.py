import json
import subprocess
import sys
from pathlib import Path

import pytest

from dnervcodec.cli import main
from dnervcodec.video import write_video
from tests.conftest import moving_shapes


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def clip_file(tmp_path):
    return write_video(tmp_path / "clip.mkv", moving_shapes(6, 32, 64))


def test_fit_writes_model_report_and_per_frame_psnr(clip_file, tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = run_cli(
        ["fit", str(clip_file), "--size", "20k", "--epochs", "3", "--quiet", "--device", "cpu", "-o", str(run)], capsys
    )
    assert code == 0, err
    report = json.loads((run / "report.json").read_text())
    assert report["frames"] == 6 and report["stored_values"] <= 20_000
    assert len(report["history"]) == 3
    rows = (run / "per_frame_psnr.csv").read_text().splitlines()
    assert rows[0] == "frame,psnr_db" and len(rows) == 7
    assert "PSNR" in out


def zero_frame_video(path):
    """A valid Y4M stream header (32x32, 25 fps) followed by no frames."""
    path.write_bytes(b"YUV4MPEG2 W32 H32 F25:1 Ip A1:1 C444\n")
    return path


@pytest.mark.parametrize(
    "case",
    ["missing", "not_video", "zero_frames", "unfactorable", "bad_budget", "bad_resolution"],
)
def test_bad_input_is_one_line_and_exit_2(case, clip_file, tmp_path, capsys):
    src, extra = str(clip_file), []
    if case == "missing":
        src = str(tmp_path / "nope.mp4")
    elif case == "not_video":
        (tmp_path / "notes.txt").write_text("hello\n" * 100)
        src = str(tmp_path / "notes.txt")
    elif case == "zero_frames":
        src = str(zero_frame_video(tmp_path / "empty.y4m"))
    elif case == "unfactorable":
        extra = ["--resolution", "127x211"]
    elif case == "bad_budget":
        extra = ["--size", "lots"]
    elif case == "bad_resolution":
        extra = ["--resolution", "tall"]
    code, out, err = run_cli(["fit", src, "--epochs", "1", "--quiet", "-o", str(tmp_path / "r"), *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dnerv fit: error:"), err
    assert "Traceback" not in err
    expected = {"missing": "input not found", "not_video": "not a", "zero_frames": "no frames",
                "unfactorable": "nearest sizes that work", "bad_budget": "budget 'lots'",
                "bad_resolution": "is not HEIGHTxWIDTH"}[case]
    assert expected in err


def test_errors_from_the_real_executable_have_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dnervcodec.cli", "fit", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "input not found" in proc.stderr


def test_encode_decode_info_round_trip(clip_file, tmp_path, capsys):
    out = tmp_path / "clip.dnerv"
    code, stdout, err = run_cli(
        ["encode", str(clip_file), "--size", "20k", "--epochs", "4", "--quiet", "--device", "cpu", "-o", str(out)],
        capsys,
    )
    assert code == 0, err
    assert out.is_file() and "bpp" in stdout and "PSNR" in stdout
    assert not (tmp_path / "clip.dnerv.run").exists()  # checkpoints are removed after a finished encode
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
    code, stdout, err = run_cli(["decode", str(out), "-o", str(tmp_path / "dec.mkv")], capsys)
    assert code == 0, err
    from dnervcodec.video import read_video

    assert read_video(tmp_path / "dec.mkv").frames.shape == (6, 32, 64, 3)
    code, stdout, err = run_cli(["info", str(out)], capsys)
    assert code == 0, err
    for part in ("decoder weights", "content embeddings", "diff embeddings", "header and container", "bpp"):
        assert part in stdout
    code, stdout, _ = run_cli(["info", "--json", str(out)], capsys)
    info = json.loads(stdout)
    assert sum(info["parts_bytes"].values()) == info["bytes"] == out.stat().st_size


@pytest.mark.parametrize("command", ["decode", "info"])
def test_damaged_dnerv_files_give_one_line(command, tmp_path, capsys):
    bad = tmp_path / "bad.dnerv"
    bad.write_bytes(b"\x8bDNRV\r\n\x1a\n\x00\x01\x00\x00" + b"\x00" * 10)
    extra = ["-o", str(tmp_path / "x.mkv")] if command == "decode" else []
    for path in (bad, tmp_path / "missing.dnerv"):
        code, _, err = run_cli([command, str(path), *extra], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.mkv").exists()


def test_killed_encode_leaves_no_output_and_resumes(clip_file, tmp_path):
    import os
    import signal
    import time

    out = tmp_path / "killed.dnerv"
    cmd = [sys.executable, "-m", "dnervcodec.cli", "encode", str(clip_file), "--size", "20k", "--epochs", "60",
           "--quiet", "--device", "cpu", "--checkpoint-minutes", "0.003", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed.dnerv.run" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "no checkpoint was written before the kill"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".killed")] == []
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert out.is_file()
    assert not ckpt.parent.exists()  # the run folder the killed run made is removed once the resumed run finishes


def test_denoise_command_and_encode_with_denoising(clip_file, tmp_path, capsys):
    from dnervcodec.denoise.noise import add_awgn
    from dnervcodec.metrics import psnr
    from dnervcodec.video import read_video

    clean = read_video(clip_file).frames
    noisy_path = write_video(tmp_path / "noisy.mkv", add_awgn(clean, 25, seed=1))
    code, out, err = run_cli(["denoise", str(noisy_path), "--method", "nlm", "--sigma", "25", "-o",
                              str(tmp_path / "den.mkv")], capsys)
    assert code == 0, err
    assert psnr(clean, read_video(tmp_path / "den.mkv").frames) > psnr(clean, read_video(noisy_path).frames)
    code, out, err = run_cli(["encode", str(noisy_path), "--denoise", "nlm", "--size", "20k", "--epochs", "2",
                              "--quiet", "--device", "cpu", "-o", str(tmp_path / "n.dnerv")], capsys)
    assert code == 0, err
    assert "nlm-denoised" in out
    code, out, _ = run_cli(["info", "--json", str(tmp_path / "n.dnerv")], capsys)
    info = json.loads(out)
    assert info["ancillary"]["denoise"]["method"] == "nlm" and "denoise" in info["ancillary"]["timings"]
    code, out, err = run_cli(["denoise", str(noisy_path), "--method", "vdp", "--iters", "3", "--quiet", "--device",
                              "cpu", "-o", str(tmp_path / "v.mkv")], capsys)
    assert code == 0, err
    assert "denoised by vdp" in out and read_video(tmp_path / "v.mkv").frames.shape == clean.shape


def test_info_reports_the_files_own_format_version_and_stage_timings(capsys):
    from pathlib import Path

    fixture = Path(__file__).parent / "data" / "format-1.0.dnerv"
    code, out, _ = run_cli(["info", str(fixture)], capsys)
    assert code == 0 and "dnerv format 1.0" in out.splitlines()[0]
    assert "encode stages: fit" in out


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_info_into_a_closed_pipe_is_quiet(unbuffered):
    """`dnerv info x.dnerv | head`: the reader may leave before we write; that is no error and no traceback."""
    import os

    fixture = str(Path(__file__).parent / "data" / "format-1.0.dnerv")
    env = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
    proc = subprocess.Popen([sys.executable, "-m", "dnervcodec.cli", "info", fixture], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the command has written anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Exception" not in err


def test_encode_spends_a_fifth_of_the_epochs_on_rate_distortion_by_default(clip_file, tmp_path, capsys):
    out = tmp_path / "clip.dnerv"
    code, stdout, err = run_cli(["encode", str(clip_file), "--bpp", "4", "--epochs", "5", "--quiet", "--device", "cpu",
                                 "-o", str(out)], capsys)
    assert code == 0, err
    assert "rate-distortion tuned" in stdout and "predicted" in stdout
    code, info, err = run_cli(["info", str(out), "--json"], capsys)
    coding = json.loads(info)["coding"]
    assert code == 0 and coding["rd_epochs"] == 1 and coding["bits"] == "learned", coding
    code, stdout, err = run_cli(["encode", str(clip_file), "--bpp", "4", "--epochs", "5", "--bits", "6", "--quiet",
                                 "--device", "cpu", "-o", str(tmp_path / "b6.dnerv")], capsys)
    assert code == 0 and "rate-distortion" not in stdout, err  # asking for bits means the min/max pipeline
