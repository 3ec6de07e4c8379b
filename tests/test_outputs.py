"""Outputs never destroy data: refusals before work, -y, folders, stdout, run folders, umask (issues 14 and 17)."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from dnervcodec.cli import main
from dnervcodec.codec import decode
from dnervcodec.errors import OutputError
from dnervcodec.outputs import RUN_MARKER, run_folder, write_bytes_atomic, write_frame_folder
from dnervcodec.video import read_video, write_video
from tests.conftest import moving_shapes

FIXTURE = Path(__file__).parent / "data" / "format-1.0.dnerv"  # 6 frames 32x64 at 25 fps


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, command="decode"):
    lines = err.strip().splitlines()
    return code == 2 and len(lines) == 1 and lines[0].startswith(f"dnerv {command}: error:")


def tree(path: Path) -> dict:
    """Every file and folder under path (hidden ones too), with the files' bytes."""
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None for p in sorted(path.rglob("*"))}


def test_decode_into_a_folder_with_a_users_file_keeps_it(tmp_path, capsys):
    pictures = tmp_path / "Pictures"
    pictures.mkdir()
    (pictures / "holiday.jpg").write_bytes(b"a picture the user cares about")
    for extra in ([], ["-y"]):  # -y replaces our own frames only, never a folder holding other files
        code, out, err = run_cli(["decode", FIXTURE, "-o", pictures, *extra], capsys)
        assert one_line_error(code, err), err
        assert "holiday.jpg" in err and out == ""
        assert tree(pictures) == {"holiday.jpg": b"a picture the user cares about"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pictures"]  # no temporary folder left beside it


def test_decode_into_the_working_directory_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    for extra in ([], ["-y"]):
        code, _, err = run_cli(["decode", FIXTURE, "-o", ".", *extra], capsys)
        assert one_line_error(code, err), err
    assert tree(tmp_path) == {"notes.txt": b"mine"}


def test_existing_file_is_refused_without_y_and_replaced_with_y(tmp_path, capsys):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"not yet a video")
    code, stdout, err = run_cli(["decode", FIXTURE, "-o", out], capsys)
    assert one_line_error(code, err) and "exists" in err and "-y" in err, err
    assert out.read_bytes() == b"not yet a video"
    code, stdout, err = run_cli(["decode", FIXTURE, "-o", out, "--overwrite"], capsys)
    assert code == 0, err
    assert read_video(out).frames.shape == (6, 32, 64, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


def test_folder_of_our_frames_is_replaced_with_y_and_an_empty_folder_is_used(tmp_path, capsys):
    frames_dir = tmp_path / "frames"
    write_video(frames_dir, moving_shapes(9, 32, 64))  # an earlier, longer decode
    code, _, err = run_cli(["decode", FIXTURE, "-o", frames_dir], capsys)
    assert one_line_error(code, err) and "-y" in err, err
    assert len(list(frames_dir.iterdir())) == 9
    code, _, err = run_cli(["decode", FIXTURE, "-o", frames_dir, "-y"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in frames_dir.iterdir()) == [f"frame_{i:05d}.png" for i in range(6)]
    np.testing.assert_array_equal(read_video(frames_dir).frames, decode(FIXTURE)[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(["decode", FIXTURE, "-o", empty], capsys)
    assert code == 0, err
    assert len(list(empty.iterdir())) == 6


def test_a_file_where_a_folder_is_named_is_refused(tmp_path, capsys):
    target = tmp_path / "frames"
    target.write_bytes(b"a file without a suffix")
    code, _, err = run_cli(["decode", FIXTURE, "-o", target, "-y"], capsys)
    assert one_line_error(code, err), err
    assert target.read_bytes() == b"a file without a suffix"


def parse_y4m(data: bytes) -> tuple[dict, list[bytes]]:
    header, _, rest = data.partition(b"\n")
    fields = header.split(b" ")
    assert fields[0] == b"YUV4MPEG2"
    meta = {f[:1].decode(): f[1:].decode() for f in fields[1:]}
    w, h = int(meta["W"]), int(meta["H"])
    frame_bytes = len(b"FRAME\n") + 3 * w * h  # C444: three full planes
    assert len(rest) % frame_bytes == 0
    frames = [rest[i : i + frame_bytes] for i in range(0, len(rest), frame_bytes)]
    assert all(f.startswith(b"FRAME\n") for f in frames)
    return meta, frames


def test_decode_to_stdout_is_y4m_and_nothing_else(tmp_path):
    root = str(Path(__file__).resolve().parents[1])  # this checkout's package, although cwd is elsewhere
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "dnervcodec.cli", "decode", str(FIXTURE), "-o", "-"],
                          capture_output=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    meta, raw = parse_y4m(proc.stdout)
    assert (meta["W"], meta["H"], meta["F"], meta["C"]) == ("64", "32", "25:1", "444") and len(raw) == 6
    with av.open(io.BytesIO(proc.stdout), format="yuv4mpegpipe") as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    expected, _ = decode(FIXTURE)
    assert frames.shape == expected.shape
    assert np.abs(frames.astype(int) - expected).max() <= 3  # the .y4m writer's 4:4:4 rounding only
    assert "6 frames 32x64" in proc.stderr.decode()
    assert list(tmp_path.iterdir()) == []  # no folder named '-'
    file_path = write_video(tmp_path / "same.y4m", expected, 25)
    assert file_path.read_bytes() == proc.stdout  # the stream is byte for byte the .y4m file


def test_stdout_is_refused_for_a_terminal_and_for_other_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, _, err = run_cli(["decode", FIXTURE, "-o", "-"], capsys)
    assert one_line_error(code, err) and "pipe" in err, err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(4, 32, 64))
    for command in (["encode"], ["fit"], ["denoise", "--method", "nlm"]):
        code, _, err = run_cli([*command, clip, "-o", "-"], capsys)
        assert one_line_error(code, err, command[0]), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mkv"]


@pytest.fixture
def clip_file(tmp_path):
    return write_video(tmp_path / "clip.mkv", moving_shapes(6, 32, 64))


@pytest.mark.parametrize("command", ["encode", "fit", "denoise"])
def test_refusals_come_before_any_work(command, clip_file, tmp_path, capsys):
    """An existing output stops the command in well under a second: no reading, fitting or denoising first."""
    if command == "fit":
        target = tmp_path / "run"
        target.mkdir()
        (target / "report.json").write_text("{}")
        (target / "my notes.txt").write_text("kept")
    else:
        target = tmp_path / ("out.dnerv" if command == "encode" else "out.mkv")
        target.write_bytes(b"precious")
    extra = ["--method", "vdp"] if command == "denoise" else ["--epochs", "300", "--size", "20k"]
    before = tree(tmp_path)
    t0 = time.perf_counter()
    code, _, err = run_cli([command, clip_file, *extra, "--quiet", "--device", "cpu", "-o", target], capsys)
    assert time.perf_counter() - t0 < 2
    assert one_line_error(code, err, command) and "-y" in err, err
    assert tree(tmp_path) == before  # nothing written, not even a run folder


@pytest.mark.parametrize("command", ["encode", "fit"])
def test_an_existing_file_or_folder_of_the_wrong_kind_is_refused_even_with_y(command, clip_file, tmp_path, capsys):
    target = tmp_path / "x"
    if command == "encode":
        target.mkdir()
        (target / "inside.txt").write_text("kept")
    else:
        target.write_bytes(b"kept")
    code, _, err = run_cli([command, clip_file, "--epochs", "300", "--quiet", "-y", "-o", target], capsys)
    assert one_line_error(code, err, command), err
    assert "Traceback" not in err
    assert (target / "inside.txt" if command == "encode" else target).read_bytes() == b"kept"


def test_encode_keeps_a_run_folder_it_did_not_create(clip_file, tmp_path, capsys):
    out = tmp_path / "clip.dnerv"
    users = tmp_path / "clip.dnerv.run"  # the default run folder's name, but the user's own folder
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    args = ["encode", clip_file, "--size", "20k", "--epochs", "1", "--quiet", "--device", "cpu", "-o", out]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert (users / "keep.txt").read_text() == "mine"
    code, _, err = run_cli([*args, "-y"], capsys)  # the kept folder holds the finished run's checkpoint
    assert code == 2 and "--restart" in err
    code, _, err = run_cli([*args, "-y", "--restart"], capsys)  # -y replaces the .dnerv file, still not the folder
    assert code == 0, err
    assert (users / "keep.txt").read_text() == "mine"


def test_fit_replaces_its_results_only_with_y_and_leaves_other_files(clip_file, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["fit", clip_file, "--size", "20k", "--epochs", "1", "--quiet", "--device", "cpu", "-o", run]
    assert run_cli(args, capsys)[0] == 0
    (run / "notes.txt").write_text("mine")
    code, _, err = run_cli(args, capsys)
    assert one_line_error(code, err, "fit") and "-y" in err, err
    code, _, err = run_cli([*args, "-y", "--restart"], capsys)  # the finished fit's checkpoint needs --restart too
    assert code == 0, err
    assert (run / "notes.txt").read_text() == "mine"
    assert not [p for p in run.iterdir() if p.name.endswith(".part")]


def test_run_folder_is_removed_only_when_this_program_made_it(tmp_path):
    made = tmp_path / "made.run"
    with run_folder(made, remove_on_success=True) as path:
        assert (path / RUN_MARKER).is_file()
        (path / "checkpoint.pt").write_bytes(b"x")
    assert not made.exists()

    users = tmp_path / "users.run"
    users.mkdir()
    (users / "checkpoint.pt").write_bytes(b"x")
    with run_folder(users, remove_on_success=True):
        pass
    assert (users / "checkpoint.pt").exists()

    named = tmp_path / "named.run"  # --run-dir: kept after success
    with run_folder(named, remove_on_success=False):
        pass
    assert named.is_dir()

    failed = tmp_path / "failed.run"
    with pytest.raises(RuntimeError), run_folder(failed, remove_on_success=True):
        raise RuntimeError("failed before any checkpoint")
    assert not failed.exists()

    interrupted = tmp_path / "interrupted.run"
    with pytest.raises(KeyboardInterrupt), run_folder(interrupted, remove_on_success=True) as path:
        (path / "checkpoint.pt").write_bytes(b"x")
        raise KeyboardInterrupt
    assert (interrupted / "checkpoint.pt").exists()  # kept for --resume

    (tmp_path / "file.run").write_text("a file")
    with pytest.raises(OutputError), run_folder(tmp_path / "file.run", remove_on_success=True):
        pass
    assert (tmp_path / "file.run").read_text() == "a file"


def test_a_failed_write_leaves_the_old_output_and_no_temporary_files(tmp_path):
    def frames_then_failure():
        yield b"frame 0"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_frame_folder(tmp_path / "new", frames_then_failure())
    assert list(tmp_path.iterdir()) == []

    existing = write_video(tmp_path / "old", moving_shapes(2, 32, 64))
    before = tree(existing)
    with pytest.raises(RuntimeError):
        write_frame_folder(existing, frames_then_failure(), overwrite=True)
    assert tree(existing) == before

    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(OutputError):
        write_bytes_atomic(path, b"new", overwrite=False)  # no-clobber even at the final rename
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "old"]


def test_outputs_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        frames = moving_shapes(2, 32, 64)
        paths = [write_video(tmp_path / "a.mkv", frames), write_video(tmp_path / "a.y4m", frames),
                 write_bytes_atomic(tmp_path / "a.dnerv", b"data")]
        folder = write_video(tmp_path / "frames", frames)
        existing = tmp_path / "existing"
        existing.mkdir()
        write_video(existing, frames)
        for path in paths + list(folder.iterdir()) + list(existing.iterdir()):
            assert oct(path.stat().st_mode & 0o777) == oct(0o644), path
        assert oct(folder.stat().st_mode & 0o777) == oct(0o755)
        with run_folder(tmp_path / "r.run", remove_on_success=False) as run:
            assert oct(run.stat().st_mode & 0o777) == oct(0o755)
    finally:
        os.umask(old)


def test_decode_to_a_closed_pipe_is_quiet():
    """`dnerv decode x.dnerv -o - | head -c 10`: the reader leaving is no error and no traceback."""
    root = str(Path(__file__).resolve().parents[1])
    proc = subprocess.Popen([sys.executable, "-m", "dnervcodec.cli", "decode", str(FIXTURE), "-o", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=root)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "Error" not in err
