"""VDP: the pyramid loss, a tiny end-to-end fit, options, on_eval and exact resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dnervcodec.denoise.base import get_denoiser
from dnervcodec.denoise.noise import add_awgn
from dnervcodec.denoise.vdp import VDP, LatentFramePredictor, VDPNet, pyramid_loss, pyramid_weights
from dnervcodec.errors import CheckpointError, ConfigError, DenoiseInterrupted
from dnervcodec.metrics import psnr
from tests.conftest import InterruptAfter, moving_shapes

TINY = dict(latent_dim=8, widths=(32, 16), hidden=8, batch=2, seed=0, device="cpu")


def test_single_level_pyramid_is_plain_mse() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 13, 17, generator=gen), torch.rand(2, 3, 13, 17, generator=gen)
    assert torch.allclose(pyramid_loss(x, y, pyramid_weights(1)), F.mse_loss(x, y))


def test_pyramid_loss_known_values() -> None:
    # a +-1 checkerboard difference: squared error 1 at full scale, exactly 0 once 2x2 blocks are averaged
    y = torch.zeros(1, 1, 4, 4)
    board = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)) % 2 * 2.0 - 1
    x = board.view(1, 1, 4, 4)
    assert pyramid_weights(3) == pytest.approx([1 / 3] * 3)
    assert pyramid_weights(2, 3.0) == pytest.approx([0.25, 0.75])
    assert float(pyramid_loss(x, y, pyramid_weights(3))) == pytest.approx(1 / 3)
    # a constant offset survives every scale
    assert float(pyramid_loss(y + 0.5, y, pyramid_weights(3))) == pytest.approx(0.25)
    # levels beyond the image size are skipped instead of failing
    assert float(pyramid_loss(x, y, [0.5, 0.25, 0.125, 0.125])) == pytest.approx(0.5)


def test_pyramid_loss_damps_white_noise() -> None:
    # why it protects against fitting the noise: white noise loses 3/4 of its energy per level
    noise = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    zero = torch.zeros_like(noise)
    single, three = float(pyramid_loss(noise, zero, [1.0])), float(pyramid_loss(noise, zero, pyramid_weights(3)))
    assert three == pytest.approx(single * (1 + 1 / 4 + 1 / 16) / 3, rel=0.03)


def test_latent_predictor_starts_as_identity_and_rollout_is_causal() -> None:
    torch.manual_seed(0)
    lfp = LatentFramePredictor(4, 6)
    z = torch.randn(5, 4, 3, 5)
    assert torch.equal(lfp.predict_next(z), z[:-1])  # zero-initialised step: "the next latent is this one"
    torch.nn.init.normal_(lfp.step.weight)
    z.requires_grad_(True)
    lfp.predict_next(z)[2].sum().backward()  # the prediction of z_3 uses z_0..z_2 only
    assert z.grad[:3].abs().sum() > 0 and torch.all(z.grad[3:] == 0)


@pytest.mark.parametrize("dynamics", ["free", "rollout"])
def test_decoder_output_matches_odd_frame_sizes(dynamics: str) -> None:
    net = VDPNet(3, 17, 30, latent_dim=4, widths=(8, 8), hidden=4, dynamics=dynamics, walk=0.1)
    z, z_pred = net.codes()
    assert z.shape == (3, 4, 5, 8) and z_pred.shape == (2, 4, 5, 8)
    assert net.decode(z).shape == (3, 3, 17, 30)


def test_tiny_fit_end_to_end() -> None:
    clean = moving_shapes(8, 32, 64)
    noisy = add_awgn(clean, 30, seed=0)
    model = VDP(iters=150, lr=5e-3, **TINY)
    out = model.denoise(noisy, progress=False)
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    assert len(model.history) == 150 and all(np.isfinite(h["loss"]) for h in model.history)
    assert [h["phase"] for h in model.history].count("predict") == model.predict_iters
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0


def test_registry_and_bad_options() -> None:
    assert isinstance(get_denoiser("vdp", iters=1, seed=2, device="cpu", pyramid_levels=1), VDP)
    with pytest.raises(ConfigError, match="dynamics"):
        VDP(dynamics="gru")
    with pytest.raises(ConfigError, match="pyramid_levels"):
        VDP(pyramid_levels=0)
    with pytest.raises(ConfigError, match="widths"):
        VDP(widths=())
    with pytest.raises(ConfigError, match="bad option"):
        get_denoiser("vdp", iter=3)


def test_on_eval_is_called_every_eval_every_steps() -> None:
    noisy = add_awgn(moving_shapes(4, 16, 32), 20, seed=0)
    seen: list[tuple[int, tuple, np.dtype]] = []
    model = VDP(iters=7, eval_every=3, on_eval=lambda i, est: seen.append((i, est.shape, est.dtype)), **TINY)
    model.denoise(noisy, progress=False)
    assert seen == [(3, noisy.shape, np.uint8), (6, noisy.shape, np.uint8)]


@pytest.mark.parametrize("stop_at", [2, 9])  # in the prediction phase; in the denoising phase
def test_interrupted_run_resumes_to_the_same_output(tmp_path, stop_at: int) -> None:
    noisy = add_awgn(moving_shapes(5, 16, 24), 25, seed=1)
    options = dict(TINY, iters=14, predict_fraction=0.25, seed=3)
    straight = VDP(**options).denoise(noisy, progress=False)
    with pytest.raises(DenoiseInterrupted, match="--resume"):
        VDP(**options).denoise(noisy, progress=InterruptAfter(stop_at), run_dir=tmp_path)
    resumed = VDP(**options)
    out = resumed.denoise(noisy, progress=False, run_dir=tmp_path, resume=True)
    assert np.array_equal(out, straight)
    assert len(resumed.history) == 14
    with pytest.raises(CheckpointError):  # other settings must not pick up this checkpoint
        VDP(**{**options, "iters": 15}).denoise(noisy, progress=False, run_dir=tmp_path, resume=True)


def test_pyramid_ablation_benchmark_draws_both_curves_and_resumes(tmp_path, capsys) -> None:
    """bench/vdp_ablation end to end on a tiny clip: two curves against the clean clip, a plot, a resume."""
    import json

    from bench import vdp_ablation
    from dnervcodec.video import write_video
    from tests.conftest import InterruptAfter, moving_shapes

    threads = torch.get_num_threads()  # the benchmark sets its own thread count
    clip = write_video(tmp_path / "clip.mkv", moving_shapes(4, 32, 48), fps=25)
    argv = ["--clip", str(clip), "--resolution", "32x48", "--frames", "4", "--sigma", "25", "--iters", "4",
            "--every", "2", "--option", "widths=[8, 8]", "--option", "latent_dim=4", "--option", "hidden=4",
            "--out", str(tmp_path / "out")]
    assert vdp_ablation.main(argv) == 0
    doc = json.loads((tmp_path / "out" / "curves.json").read_text())
    assert set(doc["variants"]) == {"pyramid loss (3 levels)", "single-scale loss"}
    for run in doc["variants"].values():
        assert run["iters"] == [2, 4] and all(0 < v < 60 for v in run["psnr"])
    assert doc["variants"]["single-scale loss"]["options"]["pyramid_levels"] == 1
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
    capsys.readouterr()
    assert vdp_ablation.main(argv) == 0
    assert capsys.readouterr().out.count("already measured") == 2
    torch.set_num_threads(threads)


def test_rollout_frees_only_z0_and_takes_every_later_latent_from_the_predictor() -> None:
    """The paper's dynamics: z_0 is the only latent parameter; z_{t+1} is the LFPNet's prediction from
    z_0..z_t (its own earlier outputs), so every frame's decode trains the predictor and z_0."""
    torch.manual_seed(0)
    net = VDPNet(5, 16, 16, latent_dim=4, widths=(8, 8), hidden=6, dynamics="rollout", walk=0.1)
    assert net.latents.shape == (1, 4, 4, 4)
    torch.nn.init.normal_(net.lfp.step.weight, std=0.3)  # a predictor that moves the latents
    z, z_pred = net.codes()
    assert z.shape[0] == 5 and torch.equal(z[0], net.latents[0]) and torch.equal(z_pred, z[1:])
    state, expected = net.lfp.zero_state(net.latents), [net.latents]
    for _ in range(4):  # the rollout, step by step, through the LSTM cell alone
        nxt, state = net.lfp.cell(expected[-1], state)
        expected.append(nxt)
    assert torch.allclose(z, torch.cat(expected))
    assert not torch.allclose(z[3], z[0])
    net.decode(z[3:4]).sum().backward()
    assert net.latents.grad.abs().sum() > 0 and net.lfp.step.weight.grad.abs().sum() > 0
    # free dynamics: one latent per frame, and frame 3's decode reaches only z_3 (the predictor only
    # through the dynamics term)
    free = VDPNet(5, 16, 16, latent_dim=4, widths=(8, 8), hidden=6, dynamics="free", walk=0.1)
    assert free.latents.shape[0] == 5
    zf, _ = free.codes()
    free.decode(zf[3:4]).sum().backward()
    assert free.latents.grad[3].abs().sum() > 0 and free.latents.grad[[0, 1, 2, 4]].abs().sum() == 0
    assert free.lfp.step.weight.grad is None or free.lfp.step.weight.grad.abs().sum() == 0


def test_rollout_fit_learns_dynamics_and_denoises() -> None:
    clean = moving_shapes(8, 32, 64)
    noisy = add_awgn(clean, 30, seed=0)
    model = VDP(iters=150, lr=5e-3, dynamics="rollout", **TINY)
    captured = {}
    real = model._estimate

    def keep(net, run, device):
        captured["net"] = net
        return real(net, run, device)

    model._estimate = keep
    out = model.denoise(noisy, progress=False)
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0  # measured 19.0 -> 23.0 dB (free: 22.8 dB)
    assert not any("dyn" in h for h in model.history)  # no dynamics term: the latents are the rollout
    with torch.no_grad():
        z, _ = captured["net"].codes()
    moved = (z[1:] - z[:1]).flatten(1).norm(dim=1) / z[0].norm()
    assert moved.min() > 0.01, moved  # the predictor learned to move the latents from frame to frame
