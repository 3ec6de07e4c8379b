import json
import subprocess
import sys

import av
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
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "bgr0"
        out.mux(stream.encode(None))
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
        src = str(zero_frame_video(tmp_path / "empty.mkv"))
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


def test_errors_from_the_real_executable_have_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dnervcodec.cli", "fit", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "input not found" in proc.stderr
