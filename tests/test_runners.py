"""Local runners: K worker processes write the file one process writes, a worker that dies is one line, and
a --ray address that is no Ray cluster is refused within seconds."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import threading
import time

import pytest

from dnervcodec.cli import main
from dnervcodec.cluster import probe
from dnervcodec.errors import ConfigError
from tests.conftest import SEGMENTED_ARGS, without_timings


def test_two_workers_write_the_file_of_one(segmented_reference, tmp_path, capsys):
    clip, reference = segmented_reference
    out = tmp_path / "two.dnerv"
    assert main(["encode", str(clip), "-o", str(out), "--workers", "2", *SEGMENTED_ARGS]) == 0, capsys.readouterr().err
    assert "in 4 segments" in capsys.readouterr().out
    assert without_timings(out.read_bytes()) == without_timings(reference)


def test_a_worker_killed_mid_fit_is_one_line_and_leaves_no_file(segmented_reference, tmp_path, capsys):
    clip, _ = segmented_reference
    out, run = tmp_path / "killed.dnerv", tmp_path / "run"
    codes = []
    encode = threading.Thread(target=lambda: codes.append(main(
        ["encode", str(clip), "-o", str(out), "--workers", "2", "--run-dir", str(run), *SEGMENTED_ARGS])))
    before = {p.pid for p in mp.active_children()}
    encode.start()
    deadline = time.monotonic() + 120
    while encode.is_alive() and time.monotonic() < deadline and not list(run.glob("segment-*/checkpoint.pt")):
        time.sleep(0.02)
    workers = [p for p in mp.active_children() if p.pid not in before and p.name.startswith("dnerv-worker")]
    assert workers, "no worker process was running"
    os.kill(workers[0].pid, signal.SIGKILL)
    encode.join(120)
    err = capsys.readouterr().err
    assert codes == [2] and err.count("\n") == 1, err
    assert "a worker process was killed by SIGKILL" in err and "--resume" in err
    assert not out.exists() and list(run.glob("segment-*/checkpoint.pt"))  # the checkpoints stay


def test_an_address_that_is_no_ray_cluster_is_refused_within_seconds():
    with socket.socket() as silent:  # accepts connections but never answers, as a firewall or a wrong service
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=f"no Ray cluster answers at {address} within 1 s"):
            probe(address, seconds=1.0)
        assert time.monotonic() - t0 < 3
    with pytest.raises(ConfigError, match="not auto or a Ray head's HOST:PORT"):
        probe("127.0.0.1")
