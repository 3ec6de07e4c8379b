"""bench/denoise.py end to end on a tiny clip: the table, the resume, the cache, an unavailable denoiser."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench import denoise as bench
from bench.results import load_results, to_points
from dnervcodec.denoise import base
from dnervcodec.denoise.nlm import NLMDenoiser
from dnervcodec.denoise.noise import add_awgn
from dnervcodec.denoise.stbn import STBN
from dnervcodec.errors import ConfigError
from dnervcodec.metrics import psnr
from dnervcodec.video import write_video
from tests.conftest import moving_shapes

TINY = {"stbn": {"width": 8, "blocks": 1, "iters": 4, "crop": 16, "clip_len": 3}}
ROWS = ["noisy", "nlm", "stbn", "stbn-bilinear", "stbn-no-refine", "stbn-no-rfe", "stbn-l2", "vdp", "vdp-single-scale"]


@pytest.fixture(autouse=True)
def vdp_missing(monkeypatch):
    """VDP as in a version without it (whatever this checkout has): building it raises ConfigError."""
    def missing(**options):
        raise ConfigError("denoiser 'vdp' is not available in this version")

    monkeypatch.setitem(base._EXTRA, "vdp", missing)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _clips():
    clean = moving_shapes(5, 24, 32)
    return clean, add_awgn(clean, 25, seed=0)


def test_benchmark_table_resume_cache_and_unavailable_rows(tmp_path, monkeypatch) -> None:
    clean, noisy = _clips()
    doc = bench.run_benchmark(clean, noisy, 25.0, 0, tmp_path, ROWS, TINY, "cpu", threads=1, strengths=[10, 20],
                              clip_meta={"clip": "shapes"}, progress=False)
    points = {p["row"]: p for p in to_points(load_results(tmp_path / "results.json", bench.COLUMNS))}
    assert list(points) == ROWS
    assert points["noisy"]["psnr-rgb"] == pytest.approx(psnr(noisy, clean))
    assert points["nlm"]["best_h"] in (10, 20) and set(points["nlm"]["psnr_by_h"]) == {"10", "20"}
    assert points["nlm"]["psnr-rgb"] == pytest.approx(max(points["nlm"]["psnr_by_h"].values()), abs=1e-3)
    assert points["nlm"]["psnr-rgb"] > points["noisy"]["psnr-rgb"]
    for name in ROWS[2:7]:
        p = points[name]
        assert p["status"] == "ok" and p["threads"] == 1 and p["wall_s"] > 0 and 0 < p["ms-ssim-rgb"] <= 1
        assert p["options"]["iters"] == 4
    assert points["stbn-no-refine"]["options"] == {**TINY["stbn"], "refine_flow": False, "refine_iters": 1}
    assert points["stbn-l2"]["options"]["loss"] == "l2" and points["stbn-l2"]["sigma_used"] is None
    assert points["stbn"]["sigma_used"] == 25.0
    assert points["stbn"]["config"] == STBN(**TINY["stbn"]).options()  # defaults included
    # ablations are different runs, not copies of the default row
    assert len({points[n]["psnr-rgb"] for n in ROWS[2:7]}) == 5
    for name in ("vdp", "vdp-single-scale"):
        assert points[name]["status"].startswith("not available") and points[name]["psnr-rgb"] is None
    md = (tmp_path / "results.md").read_text()
    assert "| stbn-bilinear |" in md and "| vdp | not available" in md and "best h" in md
    assert md.index("| noisy |") < md.index("| nlm |") < md.index("| stbn |") < md.index("| vdp |")

    # rerun: nothing is measured again (any denoiser call would fail), the unavailable rows are retried
    retried = []

    def boom(*a, **k):
        raise AssertionError("measured again")

    def missing_again(**options):
        retried.append(options)
        raise ConfigError("denoiser 'vdp' is not available in this version")

    monkeypatch.setattr(STBN, "denoise", boom)
    monkeypatch.setattr(NLMDenoiser, "denoise", boom)
    monkeypatch.setitem(base._EXTRA, "vdp", missing_again)
    again = bench.run_benchmark(clean, noisy, 25.0, 0, tmp_path, ROWS, TINY, "cpu", strengths=[10, 20],
                                clip_meta={"clip": "shapes"}, progress=False)
    assert again["results"]["psnr-rgb"] == doc["results"]["psnr-rgb"]
    assert len(retried) >= 2 and {o.get("pyramid_levels") for o in retried} == {None, 1}
    # results.json lost: the clips come from the cache, with the time they took when they were made
    (tmp_path / "results.json").unlink()
    third = bench.run_benchmark(clean, noisy, 25.0, 0, tmp_path, ROWS, TINY, "cpu", strengths=[10, 20],
                                clip_meta={"clip": "shapes"}, progress=False)
    assert third["results"]["psnr-rgb"] == doc["results"]["psnr-rgb"]
    assert third["results"]["wall_s"] == doc["results"]["wall_s"]

    # other benchmarks reuse the clips
    frames, seconds = bench.denoised("stbn-bilinear", noisy, 25.0, 0, tmp_path, TINY, "cpu")
    assert np.array_equal(frames, np.load(tmp_path / "stbn-bilinear.npy"))
    assert seconds == pytest.approx(points["stbn-bilinear"]["wall_s"])
    best, _ = bench.denoised("nlm", noisy, 25.0, 0, tmp_path, clean=clean, strengths=[10, 20])
    assert psnr(best, clean) == pytest.approx(points["nlm"]["psnr-rgb"])
    with pytest.raises(ConfigError, match="clean"):
        bench.denoised("nlm", noisy, 25.0, 0, tmp_path)
    # another run (other sigma) is refused rather than mixed into this table
    with pytest.raises(ConfigError, match="different run"):
        bench.run_benchmark(clean, noisy, 20.0, 0, tmp_path, ["noisy"], progress=False)


def test_changed_options_are_measured_again_and_other_denoisers_join(tmp_path, monkeypatch) -> None:
    clean, noisy = _clips()

    class Identity:
        name = "identity"

        def denoise(self, frames, sigma=None, progress=True, run_dir=None, resume=False):
            return frames.copy()

    monkeypatch.setitem(base._EXTRA, "identity", Identity)
    bench.run_benchmark(clean, noisy, 25.0, 0, tmp_path, ["stbn", "identity"], TINY, "cpu", progress=False)
    first = np.load(tmp_path / "stbn.npy")
    doc = bench.run_benchmark(clean, noisy, 25.0, 0, tmp_path, ["stbn", "identity"],
                              {"stbn": {**TINY["stbn"], "iters": 5}}, "cpu", progress=False)
    points = {p["row"]: p for p in to_points(doc)}
    assert points["stbn"]["options"]["iters"] == 5
    assert json.loads((tmp_path / "stbn.json").read_text())["key"]["config"]["iters"] == 5
    assert not np.array_equal(np.load(tmp_path / "stbn.npy"), first)
    # a change of the denoiser's defaults (not of the options given) is a new run too
    monkeypatch.setattr(bench, "get_denoiser", lambda name, **o: base.get_denoiser(name, **{"lr": 5e-4, **o}))
    doc = bench.run_benchmark(clean, noisy, 25.0, 0, tmp_path, ["stbn"], {"stbn": {**TINY["stbn"], "iters": 5}},
                              "cpu", progress=False)
    assert to_points(doc)[0]["config"]["lr"] == 5e-4
    assert json.loads((tmp_path / "stbn.json").read_text())["key"]["config"]["lr"] == 5e-4
    assert points["identity"]["psnr-rgb"] == pytest.approx(psnr(noisy, clean))


def test_command_line(tmp_path, capsys) -> None:
    clean, _ = _clips()
    path = write_video(tmp_path / "clip.mkv", clean, 25.0)
    out = tmp_path / "out"
    argv = ["--clip", str(path), "--sigma", "25", "--rows", "noisy", "nlm", "stbn", "--nlm-strengths", "15",
            "--options", 'stbn={"width": 8, "blocks": 1, "iters": 3, "crop": 16, "clip_len": 3}',
            "--out", str(out), "--no-progress"]
    assert bench.main(argv) == 0
    text = capsys.readouterr().out
    assert "| stbn |" in text and (out / "results.json").exists() and (out / "stbn.npy").exists()
    assert bench.main(argv[:-3] + ["--options", "stbn=3", "--out", str(out)]) == 2
    assert "--options" in capsys.readouterr().err


def test_poisson_gaussian_blind_rows_and_nlm_tuned_on_another_clip(tmp_path, capsys) -> None:
    """--noise pg-*, --blind and nlm-transfer end to end: sigma is estimated by every row, NLM's strength
    comes from another clip, and the meta says so."""
    from dnervcodec.denoise.nlm import NLMDenoiser
    from dnervcodec.denoise.noise import estimate_noise, poisson_gaussian

    clip = write_video(tmp_path / "clip.mkv", moving_shapes(5, 24, 32), 25.0)
    other = write_video(tmp_path / "other.mkv", moving_shapes(5, 24, 32, seed=7), 25.0)
    out = tmp_path / "out"
    argv = ["--clip", str(clip), "--noise", "pg-middle", "--blind", "--rows", "noisy", "nlm-transfer", "stbn",
            "--nlm-tune-clip", str(other), "--options", 'stbn={"width": 8, "blocks": 1, "iters": 3, "crop": 16, '
            '"clip_len": 3}', "--out", str(out), "--no-progress"]
    assert bench.main(argv) == 0
    assert "Poisson-Gaussian middle" in capsys.readouterr().out
    doc = json.loads((out / "results.json").read_text())
    meta, points = doc["meta"], {p["row"]: p for p in to_points(doc)}
    model = poisson_gaussian("middle")
    clean = moving_shapes(5, 24, 32)
    noisy = model.apply(clean, seed=0)
    assert meta["noise"]["kind"] == "poisson-gaussian" and meta["blind"] is True
    assert meta["sigma"] == pytest.approx(model.effective_sigma(clean), abs=1e-3)
    assert meta["estimate"]["sigma"] == pytest.approx(estimate_noise(noisy).sigma)
    transfer = meta["nlm_transfer"]
    assert set(transfer["psnr_by_strength"]) == {f"{k:g}" for k in bench.NLM_TRANSFER_STRENGTHS}
    assert transfer["strength"] == max(bench.NLM_TRANSFER_STRENGTHS,
                                       key=lambda k: transfer["psnr_by_strength"][f"{k:g}"])
    assert points["nlm-transfer"]["options"]["strength"] == transfer["strength"]
    expected = NLMDenoiser(strength=transfer["strength"], **bench.NLM_FIXED).denoise(noisy, None, progress=False)
    assert points["nlm-transfer"]["psnr-rgb"] == pytest.approx(psnr(expected, clean))
    assert points["stbn"]["sigma_given"] is None
    assert points["stbn"]["sigma_used"] == pytest.approx(meta["estimate"]["sigma"])
    assert "sigma estimated by every row" in (out / "results.md").read_text()
    # without a tuning clip the transfer row cannot be built: one line, exit 2
    assert bench.main(argv[:8] + ["--out", str(tmp_path / "o2"), "--no-progress"]) == 2
    assert "--nlm-tune-clip" in capsys.readouterr().err
