"""Ray: a real local cluster (a head on 127.0.0.1 with room for 2 worker processes, no mock) encodes the
4-segment clip into the file `--workers 1` writes, also when one of its workers is killed in mid-fit."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from dnervcodec.cli import main
from dnervcodec.codec import EncodeConfig, encode_video
from dnervcodec.errors import ConfigError
from dnervcodec.fit import FitConfig
from dnervcodec.runners import RayTasks
from dnervcodec.video import Video
from tests.conftest import SEGMENTED_ARGS, moving_shapes, without_timings

ray_cluster_utils = pytest.importorskip("ray.cluster_utils")


@pytest.fixture(scope="module")
def cluster():
    """One head node for every test here, bound to 127.0.0.1 only. Ray maps 127.0.0.1 to the machine's
    network address when it connects, unless its 'cluster on Windows/macOS' switch is off; turned off, the
    head, its workers (which inherit the environment) and our driver all stay on the loopback."""
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    saved, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    head = ray_cluster_utils.Cluster(initialize_head=True, connect=False, head_node_args={
        "num_cpus": 2, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    try:
        yield head.address
    finally:
        head.shutdown()
        ray_constants.ENABLE_RAY_CLUSTER = saved
        os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)


def test_a_ray_cluster_writes_the_file_of_one_process(cluster, segmented_reference, tmp_path, capsys):
    clip, reference = segmented_reference
    out = tmp_path / "ray.dnerv"
    assert main(["encode", str(clip), "-o", str(out), "--ray", cluster, *SEGMENTED_ARGS]) == 0, capsys.readouterr().err
    assert "in 4 segments" in capsys.readouterr().out
    assert without_timings(out.read_bytes()) == without_timings(reference)


def test_a_killed_worker_is_retried_and_resumes_to_the_same_bytes(cluster, segmented_reference, tmp_path, capsys):
    clip, reference = segmented_reference
    out, run = tmp_path / "killed.dnerv", tmp_path / "run"
    codes = []
    encode = threading.Thread(target=lambda: codes.append(main(
        ["encode", str(clip), "-o", str(out), "--ray", cluster, "--run-dir", str(run), *SEGMENTED_ARGS])))
    encode.start()
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and encode.is_alive() and time.monotonic() < deadline:
        for folder in sorted(run.glob("segment-*")):  # a job records its process; kill it once it has saved
            if (folder / "checkpoint.pt").exists() and (folder / "attempt.json").exists():
                pid = json.loads((folder / "attempt.json").read_text())["pid"]
                os.kill(pid, signal.SIGKILL)
                killed = folder, pid
                break
        time.sleep(0.02)
    encode.join(300)
    assert killed is not None, "no segment had a checkpoint while the encode ran"
    assert codes == [0], capsys.readouterr().err
    folder, pid = killed
    rerun = json.loads((folder / "attempt.json").read_text())
    assert rerun["pid"] != pid  # Ray ran the job again in another worker, which claimed the same attempt: resumed
    assert without_timings(out.read_bytes()) == without_timings(reference)


def test_an_error_in_a_task_is_ours_not_rays(cluster):
    """A job that fails (here rate-distortion fine-tuning asked with the l1ssim loss) is not retried, and the
    encode raises our one-line error, not Ray's wrapper with a remote traceback."""
    cfg = EncodeConfig(size="12k", fit=FitConfig(epochs=1, loss="l1ssim"), rd_epochs=1, value_bits=6, device="cpu")
    with pytest.raises(ConfigError, match="use loss l2"):
        encode_video(Video(moving_shapes(2, 32, 64), 25.0, (32, 64)), cfg, progress=False, runner=RayTasks(cluster))
