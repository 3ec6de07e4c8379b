"""`dnerv denoise` without --sigma: the documented default path estimates the noise level and says so."""

from __future__ import annotations

import numpy as np
import pytest

from dnervcodec.cli import main
from dnervcodec.denoise import nlm as nlm_module
from dnervcodec.denoise.noise import estimate_noise, poisson_gaussian
from dnervcodec.video import read_video, write_video
from tests.conftest import moving_shapes


@pytest.fixture
def noisy_file(tmp_path):
    return write_video(tmp_path / "noisy.mkv", poisson_gaussian("middle").apply(moving_shapes(4, 48, 64), seed=1))


def test_without_sigma_the_estimate_is_printed_and_used(noisy_file, tmp_path, capsys, monkeypatch) -> None:
    used = []
    real = nlm_module.nlm_denoise
    monkeypatch.setattr(nlm_module, "nlm_denoise",
                        lambda frames, h, *a, **k: used.append(h) or real(frames, h, *a, **k))
    assert main(["denoise", str(noisy_file), "--method", "nlm", "--quiet", "-o", str(tmp_path / "a.mkv")]) == 0
    out = capsys.readouterr().out
    est = estimate_noise(read_video(noisy_file).frames)
    assert f"noise level estimated from the clip: sigma {est.sigma:.1f}" in out and "x intensity" in out
    assert "--sigma overrides it" in out and "denoised by nlm" in out
    assert used == [pytest.approx(nlm_module.DEFAULT_STRENGTH_PER_SIGMA * est.sigma)]
    # given: no estimate, the given level is used
    assert main(["denoise", str(noisy_file), "--method", "nlm", "--sigma", "10", "--quiet", "-o",
                 str(tmp_path / "b.mkv")]) == 0
    assert "estimated" not in capsys.readouterr().out
    assert used[-1] == pytest.approx(nlm_module.DEFAULT_STRENGTH_PER_SIGMA * 10)
    assert not np.array_equal(read_video(tmp_path / "a.mkv").frames, read_video(tmp_path / "b.mkv").frames)


def test_vdp_says_it_does_not_use_the_estimate(noisy_file, tmp_path, capsys) -> None:
    assert main(["denoise", str(noisy_file), "--method", "vdp", "--iters", "2", "--quiet", "--device", "cpu",
                 "-o", str(tmp_path / "v.mkv")]) == 0
    assert "vdp fits without it" in capsys.readouterr().out
