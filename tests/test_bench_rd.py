"""End to end: `python -m bench.rd` on a tiny synthetic clip, resume, and the codec registry hook."""

import json

import pytest

from bench import rd
from bench.bdrate import bd_rate
from bench.results import load_results, to_points
from dnervcodec.video import write_video
from tests.conftest import moving_shapes


def test_rd_cli_end_to_end_and_resume(tmp_path, monkeypatch):
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(8, 64, 96), fps=25)
    out = tmp_path / "out"
    argv = ["--clip", str(clip), "--anchors", "x264-medium-420", "x265-ultrafast-444", "--crfs", "24", "38",
            "--out", str(out), "--no-progress"]
    assert rd.main(argv) == 0
    for name in ("x264-medium-420", "x265-ultrafast-444"):
        doc = load_results(out / f"{name}.json")
        assert doc["name"] == name and doc["param"] == "crf"
        r = doc["results"]
        assert sorted(r["crf"]) == [24, 38] and r["bpp"] == sorted(r["bpp"])
        assert all(len(v) == 2 for v in r.values())
        assert r["psnr-rgb"][1] > r["psnr-rgb"][0]  # crf 24 (higher bpp) is better
        assert bd_rate(r["bpp"], r["psnr-rgb"], r["bpp"], r["psnr-rgb"]).value == pytest.approx(0, abs=1e-9)
    for png in ("rd-psnr.png", "rd-ms-ssim.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    md = (out / "results.md").read_text()
    assert "BD metrics of **x265-ultrafast-444**" in md and "| x264-medium-420 |" in md

    # a rerun measures nothing new
    calls = []
    real = rd._baseline_point
    monkeypatch.setattr(rd, "_baseline_point", lambda *a: calls.append(a) or real(*a))
    assert rd.main(argv) == 0
    assert calls == []
    # one more CRF measures just that point
    assert rd.main(argv[:6] + ["24", "38", "31"] + argv[8:]) == 0
    assert len(calls) == 2
    assert len(load_results(out / "x264-medium-420.json")["results"]["crf"]) == 3


def test_registered_codec_joins_the_benchmark(tmp_path):
    frames = moving_shapes(4, 32, 64)

    def fake_point(frames, fps, target):
        return {"bpp": target, "psnr-rgb": 20 + 40 * target, "ms-ssim-rgb": 0.9 + target / 10,
                "encode_s": 1.0, "decode_s": 0.01}

    spec = rd.CodecSpec("stand-in", "bpp_target", (0.1, 0.2, 0.4), fake_point, "a stand-in", {"v": 1})
    rd.register_codec(spec)
    try:
        docs = rd.run_benchmark(
            frames, 25.0, [rd.get_codec("x264-ultrafast-444", crfs=(20, 35)), rd.get_codec("stand-in")],
            tmp_path, {"clip": "synthetic"}, test="stand-in", progress=False,
        )
    finally:
        rd.CODEC_REGISTRY.pop("stand-in")
    assert [d["name"] for d in docs] == ["x264-ultrafast-444", "stand-in"]
    saved = json.loads((tmp_path / "stand-in.json").read_text())
    assert saved["param"] == "bpp_target" and [p["bpp_target"] for p in to_points(saved)] == [0.1, 0.2, 0.4]
    assert "BD metrics of **stand-in**" in (tmp_path / "results.md").read_text()


def test_unknown_anchor_is_a_clean_error(tmp_path, capsys):
    assert rd.main(["--clip", "nope.mp4", "--anchors", "x264-medium-422", "--out", str(tmp_path)]) == 2
    assert "x264-medium-422" in capsys.readouterr().err


def test_plugin_registers_a_codec_for_python_dash_m(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "fake_plugin.py").write_text(
        "from bench.rd import CodecSpec, register_codec\n"
        "def point(frames, fps, q):\n"
        "    return {'bpp': q, 'psnr-rgb': 20 + 10 * q, 'ms-ssim-rgb': 0.9, 'encode_s': 0.0, 'decode_s': 0.0}\n"
        "register_codec(CodecSpec('fake', 'q', (0.1, 0.3), point))\n"
    )
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(2, 32, 64), fps=25)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path)])}
    run = subprocess.run(
        [sys.executable, "-m", "bench.rd", "--plugin", "fake_plugin", "--clip", str(clip), "--anchors", "fake",
         "--out", str(tmp_path / "out"), "--no-progress"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert load_results(tmp_path / "out" / "fake.json")["results"]["q"] == [0.1, 0.3]


def test_dnerv_runs_in_the_benchmark_with_real_files(tmp_path):
    """Our codec through the same CLI: two real encode + decode points against two baselines."""
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(6, 32, 64), fps=25)
    out = tmp_path / "out"
    argv = ["--clip", str(clip), "--anchors", "x264-medium-420", "x265-medium-444", "--crfs", "22", "36",
            "--test", "dnerv", "--dnerv-epochs", "3", "--budgets", "6", "12", "--out", str(out), "--no-progress"]
    assert rd.main(argv) == 0
    doc = load_results(out / "dnerv.json")
    r = doc["results"]
    assert sorted(r["target_bpp"]) == [6, 12] and len(r["bpp"]) == 2
    assert r["bytes"][0] < r["bytes"][1]  # a bigger budget is a bigger file
    assert all(0 < v < 60 for v in r["psnr-rgb"])
    md = (out / "results.md").read_text()
    assert "BD metrics of **dnerv**" in md


def test_dnerv_point_resumes_from_its_work_dir(tmp_path, monkeypatch):
    """A sweep stopped after a fit picks the point up from its checkpoint, and the folder goes once measured."""
    import bench.dnerv_point as dp
    import dnervcodec.checkpoint as checkpoint_module

    frames = moving_shapes(6, 32, 64)
    spec = dp.dnerv_spec("dnerv", 3, (8,))
    straight = spec.run_point(frames, 25.0, 8)

    work = tmp_path / "work"
    with monkeypatch.context() as m:  # the first run leaves its checkpoint behind, as a run killed after the fit would
        m.setattr(dp.shutil, "rmtree", lambda *a, **k: None)
        dp.dnerv_spec("dnerv", 3, (8,), work_dir=work).run_point(frames, 25.0, 8)
    assert list(work.glob("*/*"))
    loads = []
    real_read = checkpoint_module._read
    monkeypatch.setattr(checkpoint_module, "_read", lambda p: loads.append(p) or real_read(p))
    resumed = dp.dnerv_spec("dnerv", 3, (8,), work_dir=work).run_point(frames, 25.0, 8)
    assert loads, "the second run did not resume from the checkpoint"
    # Same decoded video (the byte count may differ by the stage timings the file carries as text).
    assert all(resumed[k] == straight[k] for k in ("psnr-float", "psnr-rgb", "ms-ssim-rgb", "stored_values"))
    assert not list(work.iterdir())


def test_time_left_counts_the_dnerv_points(tmp_path, monkeypatch):
    """The bar weighs each point by its estimated seconds: on the quick preset the four DNeRV points are most
    of the time (about 5 min each, where a baseline point takes seconds)."""
    import bench.dnerv_point as dp

    bunny = (132, 160, 320, 3)
    dnerv = dp.dnerv_spec("dnerv", dp.QUICK_EPOCHS)
    assert 150 < dnerv.point_seconds(bunny, 0.1) < 600  # measured: about 310 s
    assert 2 < rd.get_codec("x264-medium-420").point_seconds(bunny, 25) < 20  # measured: 5 s
    slow = rd.get_codec("x265-veryslow-444").point_seconds(bunny, 25)
    assert slow > 2 * rd.get_codec("x265-medium-444").point_seconds(bunny, 25)
    assert dp.dnerv_spec("d", 40, qat_epochs=30).point_seconds(bunny, 0.1) > 1.5 * dnerv.point_seconds(bunny, 0.1)
    quick = [rd.get_codec(a) for a in rd.PRESETS["quick"]["anchors"]]
    baselines = sum(c.point_seconds(bunny, p) for c in quick for p in c.params)
    assert sum(dnerv.point_seconds(bunny, p) for p in dnerv.params) > 3 * baselines

    bars = []

    class Recorder:
        def __init__(self, total, **kwargs):
            self.total, self.done = total, 0.0
            bars.append(self)

        def update(self, n):
            self.done += n

        def set_description(self, *a, **k): ...
        def set_postfix(self, *a, **k): ...
        def close(self): ...

    monkeypatch.setattr(rd, "tqdm", Recorder)
    fake = rd.CodecSpec("slow-one", "q", (1, 2), lambda f, fps, q: {"bpp": q, "psnr-rgb": 30 + q, "ms-ssim-rgb": 0.9},
                        seconds=lambda shape, q: 100.0 * q)
    rd.run_benchmark(moving_shapes(2, 16, 32), 25.0, [rd.get_codec("x264-ultrafast-444", crfs=(30,)), fake],
                     tmp_path, test="slow-one", progress=False)
    baseline = rd.get_codec("x264-ultrafast-444").point_seconds((2, 16, 32, 3), 30)
    assert bars[0].total == pytest.approx(300 + baseline) and bars[0].done == pytest.approx(bars[0].total)


def test_rd_resumes_an_interrupted_dnerv_point(tmp_path, monkeypatch, capsys):
    """bench.rd gives each DNeRV point a work folder, as bench.noisy_rd does: a stopped run continues the
    point's fit from its checkpoint instead of from zero, and the folder goes once the point is measured."""
    import bench.dnerv_point as dp
    import dnervcodec.checkpoint as checkpoint_module
    from tests.conftest import InterruptAfter

    monkeypatch.setattr(rd, "CODEC_REGISTRY", dict(rd.CODEC_REGISTRY))
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(6, 32, 64), fps=25)
    out = tmp_path / "out"
    argv = ["--clip", str(clip), "--anchors", "dnerv", "--dnerv-epochs", "3", "--budgets", "8", "--out", str(out),
            "--no-progress"]
    real_encode = dp.encode_video
    with monkeypatch.context() as m:  # Ctrl-C after 5 fit steps
        m.setattr(dp, "encode_video", lambda *a, **k: real_encode(*a, **{**k, "progress": InterruptAfter(5)}))
        assert rd.main(argv) == 130
    err = capsys.readouterr().err
    assert "run the same command again to resume" in err and "Traceback" not in err
    assert (out / "work" / "dnerv" / "bpp8-e3" / "checkpoint.pt").is_file()
    loads = []
    real_read = checkpoint_module._read
    monkeypatch.setattr(checkpoint_module, "_read", lambda p: loads.append(p) or real_read(p))
    assert rd.main(argv) == 0
    assert loads and "bpp8-e3" in str(loads[0]), "the rerun fitted the point from zero"
    assert load_results(out / "dnerv.json")["results"]["target_bpp"] == [8]
    assert not (out / "work" / "dnerv" / "bpp8-e3").exists()
