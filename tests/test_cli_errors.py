"""Every error a user can reach is one line on stderr: exit 2 for what the user can fix, 1 for our bugs,
130 for Ctrl-C; a traceback only with --debug. The files here are the ones issue 14 found tracebacks with."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from dnervcodec import codec
from dnervcodec.bitstream import FORMAT_VERSION, read_container, write_container
from dnervcodec.cli import main
from tests.hostile import HUGE_ACTIVATIONS, craft
from tests.test_bitstream import build, split_chunks

FIXTURE = Path(__file__).parent / "data" / "format-2.0.dnerv"


def _edit_json(data: bytes, ctype: bytes, edit) -> bytes:
    """The file with the JSON of its first `ctype` chunk (HEAD or SEGM) rewritten as text, CRC recomputed."""
    chunks = split_chunks(data)
    i = next(k for k, (t, _) in enumerate(chunks) if t == ctype)
    skip = 4 if ctype == b"HEAD" else 8
    body = chunks[i][1]
    chunks[i] = (ctype, body[:skip] + edit(body[skip:].decode()).encode())
    return build(chunks)


def _with_ancillary(data: bytes, name: bytes, payload: bytes) -> bytes:
    chunks = split_chunks(data)
    return build(chunks[:1] + [(b"tEXt", name + b"\0" + payload)] + chunks[1:])


@pytest.fixture(scope="module")
def valid() -> bytes:
    return write_container(read_container(FIXTURE.read_bytes()))


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _one_line(err: str, start: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start), err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("where", ["decoder field", "fps"])
@pytest.mark.parametrize("command", ["decode", "info"])
def test_a_number_that_overflows_is_one_line(valid: bytes, tmp_path: Path, capsys, where: str, command: str) -> None:
    """1e400 is valid JSON syntax but no float: it was an OverflowError traceback in decode and info."""
    if where == "decoder field":
        data = _edit_json(valid, b"SEGM", lambda t: t.replace('"embed_ch":16', '"embed_ch":1e400'))
    else:
        data = _edit_json(valid, b"HEAD", lambda t: t.replace('"fps":25.0', '"fps":1e400'))
    assert b"1e400" in data
    path = tmp_path / "x.dnerv"
    path.write_bytes(data)
    extra = ["-o", str(tmp_path / "x.mkv")] if command == "decode" else []
    code, _, err = _run([command, str(path), *extra], capsys)
    assert code == 2
    assert "overflows a float" in _one_line(err, f"dnerv {command}: error:")


def test_a_lone_surrogate_is_one_line(valid: bytes, tmp_path: Path, capsys) -> None:
    """A lone surrogate escape (\\ud800) parses as JSON but cannot be printed as UTF-8: `dnerv info` failed."""
    lone = _edit_json(valid, b"HEAD", lambda t: t.replace('"encoder":"dnervcodec 0.1.0"', '"encoder":"\\ud800"'))
    path = tmp_path / "x.dnerv"
    path.write_bytes(lone)
    code, _, err = _run(["info", str(path)], capsys)
    assert code == 2
    assert "unpaired surrogate" in _one_line(err, "dnerv info: error: corrupt header")


def test_info_on_a_valid_file_without_optional_fields(valid: bytes, tmp_path: Path, capsys) -> None:
    """source_size, start and coding are for information only: info shows what is there (was a KeyError)."""
    path = tmp_path / "x.dnerv"
    for edit in (lambda h: h["video"].pop("source_size"), lambda h: h["video"].update(source_size=[[8, 16]]),
                 lambda h: h["video"].update(start="zero"), lambda h: h.update(coding=[1, 2]),
                 lambda h: h.pop("coding"), lambda h: h.update(encoder={"name": 7})):
        c = read_container(valid)
        edit(c.header)
        path.write_bytes(write_container(c))
        code, out, err = _run(["info", str(path)], capsys)
        assert code == 0 and err == "", err
        assert out.startswith(f"{path}: dnerv format {'.'.join(map(str, FORMAT_VERSION))}") and "segment 0" in out
    code, out, _ = _run(["info", "--json", str(path)], capsys)
    assert code == 0 and json.loads(out)["encoder"] == {"name": 7}


def test_info_reads_ancillary_json_with_the_bounded_parser(valid: bytes, tmp_path: Path, capsys) -> None:
    """200,000 '[' in an ancillary chunk was a RecursionError: it is now shown by its size."""
    data = _with_ancillary(valid, b"notes", b"[" * 200_000)
    data = _with_ancillary(data, b"big", b'{"a": 1e400}')
    data = _with_ancillary(data, b"denoise", b'{"method": "nlm", "seconds": ' + b"9" * 4000 + b"}")
    path = tmp_path / "x.dnerv"
    path.write_bytes(data)
    code, out, err = _run(["info", str(path)], capsys)
    assert code == 0 and err == "", err
    assert "notes: <200000 bytes>" in out and "big: <12 bytes>" in out
    assert "denoised before encoding: nlm, sigma estimated, ?" in out  # an absurd duration is not formatted


@pytest.mark.parametrize("failure", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to "
                 "allocate 274877906944 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
])
def test_out_of_memory_is_one_line(valid: bytes, tmp_path: Path, capsys, monkeypatch, failure: Exception) -> None:
    def run_out(*args, **kwargs):
        raise failure

    monkeypatch.setattr(codec, "_run_segment", run_out)
    path = tmp_path / "x.dnerv"
    path.write_bytes(valid)
    code, _, err = _run(["decode", str(path), "-o", str(tmp_path / "x.mkv")], capsys)
    assert code == 2
    line = _one_line(err, "dnerv decode: error: out of memory")
    assert "--max-decode-memory" in line
    assert ("256 GiB" in line) == ("274877906944" in str(failure))


def test_our_bugs_are_one_line_with_exit_1_and_debug_shows_the_traceback(valid: bytes, tmp_path: Path, capsys,
                                                                         monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ValueError("something\nwe did not expect")

    monkeypatch.setattr(codec, "_run_segment", broken)
    path = tmp_path / "x.dnerv"
    path.write_bytes(valid)
    args = ["decode", str(path), "-o", str(tmp_path / "x.mkv")]
    code, _, err = _run(args, capsys)
    assert code == 1
    line = _one_line(err, "dnerv decode: internal error: ValueError: something we did not expect")
    assert "--debug" in line
    for debug_args in (["--debug", *args], [*args, "--debug"]):
        code, _, err = _run(debug_args, capsys)
        assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1] == line


def test_a_file_system_error_is_one_line(valid: bytes, tmp_path: Path, capsys, monkeypatch) -> None:
    import dnervcodec.video

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.mkv"))

    monkeypatch.setattr(dnervcodec.video, "write_video", denied)
    path = tmp_path / "x.dnerv"
    path.write_bytes(valid)
    code, _, err = _run(["decode", str(path), "-o", str(tmp_path / "x.mkv")], capsys)
    assert code == 2
    assert "Permission denied" in _one_line(err, "dnerv decode: error:")


def _address_space_limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_torch_out_of_memory_is_one_line(tmp_path: Path) -> None:
    """A trusted-but-too-big file under a 4 GiB address-space limit: torch's allocation fails (a RuntimeError)."""
    path = tmp_path / "huge.dnerv"
    path.write_bytes(craft(HUGE_ACTIVATIONS))
    cmd = [sys.executable, "-m", "dnervcodec.cli", "decode", str(path), "--max-decode-memory", "1T",
           "-o", str(tmp_path / "out.mkv")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=_address_space_limit,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 2
    line = _one_line(proc.stderr, "dnerv decode: error: out of memory")
    assert "an allocation of 256 GiB failed" in line
