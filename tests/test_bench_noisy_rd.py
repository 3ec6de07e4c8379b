"""bench/noisy_rd.py end to end on a tiny clip: every kind of chain, quality against the clean clip, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import noisy_rd
from bench.results import load_results
from dnervcodec.denoise.noise import add_awgn
from dnervcodec.metrics import psnr
from dnervcodec.video import read_video, write_video
from tests.conftest import moving_shapes

TINY = ['stbn={"width": 8, "blocks": 1, "iters": 4, "crop": 16, "clip_len": 3}',
        'vdp={"iters": 4, "widths": [8, 8], "latent_dim": 4, "hidden": 4}']
CHAINS = ["x265-medium-444", "nlm+x265-medium-444", "stbn+x265-medium-444", "dnerv", "stbn+dnerv", "vdp+dnerv",
          "stbn+dnerv-6bit"]


def test_chains_are_measured_against_the_clean_clip_and_resume(tmp_path, capsys):
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(5, 32, 64), fps=25)
    out = tmp_path / "out"
    argv = ["--clip", str(clip), "--resolution", "32x64", "--frames", "5", "--sigma", "25", "--crfs", "8", "45",
            "--budgets", "6", "--dnerv-epochs", "2", "--chains", *CHAINS, "--out", str(out), "--no-progress"]
    for opt in TINY:
        argv += ["--denoise-options", opt]
    assert noisy_rd.main(argv) == 0, capsys.readouterr().err
    clean = read_video(clip).frames
    noisy = add_awgn(clean, 25, seed=0)
    docs = {c: load_results(out / f"{c}.json") for c in CHAINS}
    for chain, doc in docs.items():
        r = doc["results"]
        assert all(0 < v < 60 for v in r["psnr-rgb"]) and all(b > 0 for b in r["bpp"]), chain
        assert doc["meta"]["denoiser"] == (chain.split("+")[0] if "+" in chain else None)
        assert (min(r["denoise_s"]) > 0) == ("+" in chain)
    # the reference is the clean clip: at a high rate x265 keeps the noise, so it scores near the noisy input
    x265 = docs["x265-medium-444"]["results"]
    best = int(np.argmin(x265["crf"]))
    assert x265["psnr-rgb"][best] == pytest.approx(psnr(noisy, clean), abs=1.0)
    assert docs["stbn+dnerv"]["meta"]["denoise_options"]["iters"] == 4
    assert (docs["stbn+dnerv-6bit"]["meta"]["bits"], docs["stbn+dnerv-6bit"]["meta"]["qat_epochs"]) == (6, 30)
    assert docs["dnerv"]["meta"]["bits"] == 8
    md = (out / "results.md").read_text()
    assert "BD metrics of **stbn+dnerv**" in md and (out / "rd-psnr.png").stat().st_size > 0
    cached = {p.stem for p in (out / "denoised").glob("*.npy")}
    assert {"stbn", "vdp"} <= cached and any(name.startswith("nlm-h") for name in cached)  # each denoiser ran once
    before = {c: json.dumps(d["results"]) for c, d in docs.items()}
    assert noisy_rd.main(argv) == 0  # a rerun resumes: nothing is measured again
    assert {c: json.dumps(load_results(out / f"{c}.json")["results"]) for c in CHAINS} == before
    (out / "results.md").unlink()
    report = [a if a != "x265-medium-444" else "x264-medium-420" for a in argv]  # a chain never measured
    assert noisy_rd.main(report + ["--report-only"]) == 0  # redraws from saved points, measures nothing
    assert (out / "results.md").exists() and not (out / "x264-medium-420.json").exists()


def test_unknown_denoiser_is_a_clean_error(tmp_path, capsys):
    assert noisy_rd.main(["--chains", "bm3d+dnerv", "--out", str(tmp_path)]) == 2
    assert "unknown denoiser" in capsys.readouterr().err
