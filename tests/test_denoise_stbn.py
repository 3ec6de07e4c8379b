"""STBN: the blind-spot property (exact zero gradient to the own noisy pixel) and a tiny end-to-end fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnervcodec.denoise import stbn as stbn_module
from dnervcodec.denoise.base import get_denoiser
from dnervcodec.denoise.gaussian import covariance_from_raw
from dnervcodec.denoise.noise import add_awgn
from dnervcodec.denoise.stbn import STBN, STBNNet
from dnervcodec.errors import CheckpointError, ConfigError, DenoiseInterrupted
from dnervcodec.metrics import psnr
from dnervcodec.progress import Progress
from tests.conftest import InterruptAfter, moving_shapes


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads oversubscribe and run ~20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _flows(kind: str, t: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "zero":
        return torch.zeros(1, t, 2, h, w, dtype=torch.float64), torch.zeros(1, t, 2, h, w, dtype=torch.float64)
    # non-trivial: a smooth random field of several pixels plus sub-pixel jitter
    prev = (torch.randn(1, t, 2, 1, 1, generator=gen) * 3 + torch.randn(1, t, 2, h, w, generator=gen)).double()
    nxt = (torch.randn(1, t, 2, 1, 1, generator=gen) * 3 + torch.randn(1, t, 2, h, w, generator=gen)).double()
    return prev, nxt


@pytest.mark.parametrize("flow", ["zero", "random"])
@pytest.mark.parametrize("use_rfe", [False, True])
@pytest.mark.parametrize("warp_mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("loss", ["l2", "nll"])
def test_output_is_blind_to_its_own_noisy_pixel(flow: str, use_rfe: bool, warp_mode: str, loss: str) -> None:
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(0)
    t, h, w = 4, 17, 20
    model = STBN(width=8, blocks=2, use_rfe=use_rfe, warp_mode=warp_mode, loss=loss)
    net = model.build().double()
    x = torch.rand(1, t, 3, h, w, generator=gen, dtype=torch.float64, requires_grad=True)
    prev, nxt = _flows(flow, t, h, w, gen)
    out = net(x, prev, nxt)
    assert out.shape[2] == (9 if loss == "nll" else 3)
    for ti, yi, xi in [(0, 0, 0), (1, 8, 9), (3, 16, 19), (2, 5, 13)]:
        # every output the loss sees: the mean and (nll) each entry of the clean covariance, randomly weighted
        # so that no dependence can cancel out in a sum
        pred = out[0, ti, :, yi, xi]
        outputs = [pred[:3]] + ([covariance_from_raw(pred[3:]).flatten()] if loss == "nll" else [])
        for value in outputs:
            weights = torch.rand(value.shape, generator=gen, dtype=torch.float64) + 0.5
            (g,) = torch.autograd.grad((value * weights).sum(), x, retain_graph=True)
            g = g[0]
            assert torch.all(g[ti, :, yi, xi] == 0), g[ti, :, yi, xi]
            # the test can fail: the same frame's neighbours and the other frames do matter
            near = g[ti, :, max(yi - 1, 0):yi + 2, max(xi - 1, 0):xi + 2]
            assert near.abs().sum() > 0
            others = torch.cat([g[:ti], g[ti + 1:]])
            assert others.abs().sum() > 0


def test_posterior_mean_brings_the_own_pixel_back_only_at_inference() -> None:
    """Training's loss target is the noisy pixel, the prediction is blind; the estimate uses the pixel."""
    torch.manual_seed(0)
    model = STBN(width=8, blocks=1, loss="nll")
    net = model.build().double()
    x = torch.rand(1, 3, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    z = torch.zeros(1, 3, 2, 9, 9, dtype=torch.float64)
    est = model.estimate(net(x, z, z), x, 30 / 255)
    (g,) = torch.autograd.grad(est[0, 1, :, 4, 4].sum(), x)
    assert g[0, 1, :, 4, 4].abs().sum() > 0


def test_unmasked_network_would_fail_the_blind_spot_check() -> None:
    torch.manual_seed(0)
    net = STBNNet(width=8, blocks=1, use_rfe=False).double()
    net.encoder.head.mask.fill_(1.0)  # remove the mask: the centre pixel must now leak through
    x = torch.rand(1, 3, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    z = torch.zeros(1, 3, 2, 9, 9, dtype=torch.float64)
    net(x, z, z)[0, 1, :, 4, 4].sum().backward()
    assert x.grad[0, 1, :, 4, 4].abs().sum() > 0


@pytest.mark.parametrize("loss", ["nll", "l2"])
def test_tiny_fit_end_to_end(loss: str) -> None:
    clean = moving_shapes(8, 32, 64)
    noisy = add_awgn(clean, 30, seed=0)
    model = STBN(width=16, blocks=1, iters=120, refine_iters=10, crop=32, clip_len=4, batch=2, lr=2e-3,
                 loss=loss, seed=0, device="cpu")
    line = Progress(enabled=False)
    out = model.denoise(noisy, sigma=30 if loss == "nll" else None, progress=line)
    assert out.dtype == np.uint8 and out.shape == noisy.shape
    assert line.done == line.total == 130 + 2 * 5  # steps + two passes of 5 inference windows
    assert np.isfinite(model.history).all() and len(model.history) == 130
    assert model.sigma_used == (30 if loss == "nll" else None)
    gain = psnr(out, clean) - psnr(noisy, clean)
    assert gain > 1.0, gain  # measured: 19.0 dB -> 24.7 dB (l2), 25.1 dB (nll)


@pytest.mark.parametrize("average", [True, False])
def test_inference_windows(average: bool) -> None:
    """Each clip_len window is computed once; a frame takes the mean over the windows that hold it, or
    only the window centred on it."""
    t, length = 9, 4

    class WindowMean(torch.nn.Module):  # predicts, for every frame, the mean of its window's frames
        def forward(self, x, prev, nxt):
            return x.mean(1, keepdim=True).expand_as(x)

    clip = torch.arange(t, dtype=torch.uint8).view(t, 1, 1, 1).expand(t, 3, 2, 2) * 10
    flows = (torch.zeros(t, 2, 2, 2), torch.zeros(t, 2, 2, 2))
    model = STBN(clip_len=length, loss="l2", window_average=average)
    line = Progress(enabled=False)
    line.stage("x", model.windows(t))
    out = model._infer(WindowMean(), clip, flows, None, line)
    assert line.done == model.windows(t) == t - length + 1
    for i in range(t):
        starts = range(max(0, i - length + 1), min(i, t - length) + 1)
        if not average:
            starts = [min(max(i - length // 2, 0), t - length)]
        expected = np.mean([10 * (s0 + (length - 1) / 2) for s0 in starts])
        assert abs(int(out[i, 0, 0, 0]) - expected) <= 0.5, (i, out[i, 0, 0, 0], expected)


def test_nll_estimates_sigma_when_not_given(monkeypatch) -> None:
    noisy = add_awgn(moving_shapes(4, 24, 32), 20, seed=2)
    model = STBN(width=8, blocks=1, iters=2, refine_iters=0, crop=16, clip_len=3, seed=0, device="cpu")
    model.denoise(noisy, progress=False)
    from dnervcodec.denoise.noise import estimate_noise

    assert model.sigma_used == pytest.approx(estimate_noise(noisy).sigma)
    with pytest.raises(ConfigError, match="sigma"):
        model.denoise(noisy, sigma=0, progress=False)


@pytest.mark.parametrize("refine_flow", [True, False])
def test_second_pass_flow_source(monkeypatch, refine_flow: bool) -> None:
    """With refinement the second pass's flow comes from the first pass's output; without it (the
    equal-steps control) the noisy-frame flow is kept; both run the same passes and steps."""
    noisy = add_awgn(moving_shapes(4, 24, 32), 25, seed=1)
    sources = []
    real = stbn_module.estimate_flows

    def spy(frames, backend="dis"):
        sources.append(frames.copy())
        return real(frames, backend)

    monkeypatch.setattr(stbn_module, "estimate_flows", spy)
    model = STBN(width=8, blocks=1, iters=4, refine_iters=2, refine_flow=refine_flow, crop=16, clip_len=3,
                 seed=0, device="cpu")
    assert model.passes == [4, 2]
    model.denoise(noisy, sigma=25, progress=False)
    assert len(model.history) == 6
    assert np.array_equal(sources[0], noisy)
    assert len(sources) == (2 if refine_flow else 1)
    if refine_flow:
        assert not np.array_equal(sources[1], noisy)
    assert STBN(refine_flow=False).passes == [1500] and STBN().passes == [1500, 375]


def test_registry_and_bad_options() -> None:
    assert isinstance(get_denoiser("stbn", iters=1), STBN)
    with pytest.raises(ConfigError, match="warp_mode"):
        STBN(warp_mode="bicubic")
    with pytest.raises(ConfigError, match="flow"):
        STBN(flow="raft")
    with pytest.raises(ConfigError, match="loss"):
        STBN(loss="l1")
    with pytest.raises(ConfigError, match="bad option"):
        get_denoiser("stbn", widht=3)


@pytest.mark.parametrize("stop_at", [7, 23])  # in the first pass; in the refinement pass
def test_interrupted_run_resumes_to_the_same_output(tmp_path, stop_at: int) -> None:
    noisy = add_awgn(moving_shapes(6, 24, 32), 25, seed=1)
    options = dict(width=8, blocks=1, iters=12, refine_iters=6, crop=16, clip_len=3, seed=3, device="cpu")
    straight = STBN(**options).denoise(noisy, progress=False)
    with pytest.raises(DenoiseInterrupted, match="--resume"):
        STBN(**options).denoise(noisy, progress=InterruptAfter(stop_at), run_dir=tmp_path)
    resumed = STBN(**options)
    out = resumed.denoise(noisy, progress=False, run_dir=tmp_path, resume=True)
    assert np.array_equal(out, straight)
    assert len(resumed.history) == 18
    with pytest.raises(CheckpointError):  # other settings must not pick up this checkpoint
        STBN(**{**options, "iters": 13}).denoise(noisy, progress=False, run_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError):  # nor another noise level (it changes the NLL loss)
        STBN(**options).denoise(noisy, sigma=10, progress=False, run_dir=tmp_path, resume=True)


def _random_setup(t: int, h: int, w: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    clip = torch.randint(0, 256, (t, 3, h, w), generator=gen, dtype=torch.uint8)
    prev, nxt = _flows("random", t, h, w, gen)
    return clip, (prev[0].float(), nxt[0].float())


@pytest.mark.parametrize("loss", ["nll", "l2"])
def test_whole_sequence_propagation_does_not_depend_on_the_chunk_size(loss: str) -> None:
    """Chunked whole-clip inference is the network's forward over the whole clip, whatever the chunk size:
    the states are carried across chunk boundaries, not restarted."""
    t, h, w = 7, 12, 16
    clip, flows = _random_setup(t, h, w)
    ref = STBN(width=8, blocks=1, loss=loss, propagation="sequence", chunk=t)
    net = ref.build().eval()
    s = 25 / 255
    x = clip.float().unsqueeze(0) / 255.0
    with torch.no_grad():
        whole = ref.estimate(net(x, flows[0].unsqueeze(0), flows[1].unsqueeze(0)), x, s)[0]
    for chunk in (1, 2, 3, t, t + 5):
        model = STBN(width=8, blocks=1, loss=loss, propagation="sequence", chunk=chunk)
        line = Progress(enabled=False)
        line.stage("x", model.inference_steps(t))
        with torch.no_grad():
            parts = list(model._sequence_estimates(net, clip, flows, s, line))
        assert [a for a, _ in parts] == [a for a, _ in model.chunks(t)]
        est = torch.cat([e for _, e in parts])
        assert torch.equal(est, whole), (chunk, (est - whole).abs().max())
        line = Progress(enabled=False)
        line.stage("x", model.inference_steps(t))
        out = model._infer(net, clip, flows, s, line)
        assert line.done == line.total == 2 * len(model.chunks(t))
        assert np.array_equal(out, (whole.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    # the first and last frames see the whole clip: unlike a window, far frames change them
    far = clip.clone()
    far[-1] = 255 - far[-1]
    with torch.no_grad():
        moved = list(STBN(width=8, blocks=1, loss=loss, propagation="sequence", chunk=2)._sequence_estimates(
            net, far, flows, s, Progress(enabled=False)))[0][1]
    assert not torch.equal(moved[0], whole[0])


def test_sequence_propagation_end_to_end_and_options() -> None:
    clean = moving_shapes(8, 32, 64)
    noisy = add_awgn(clean, 30, seed=0)
    options = dict(width=16, blocks=1, iters=120, refine_iters=10, crop=32, clip_len=4, batch=2, lr=2e-3,
                   seed=0, device="cpu")
    line = Progress(enabled=False)
    model = STBN(**options, propagation="sequence", chunk=3)
    out = model.denoise(noisy, sigma=30, progress=line)
    assert line.done == line.total == 130 + 2 * 2 * 3  # steps + two passes of 3 chunks, swept twice
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0  # measured 19.0 -> 23.8 dB (windows: 25.1 dB)
    # why burn-in: trained on states that always start from zero, whole-clip inference fails
    plain = STBN(**options, propagation="sequence", chunk=3, burn_in=0).denoise(noisy, sigma=30, progress=False)
    assert psnr(plain, clean) < psnr(out, clean) - 3.0  # measured 19.0 dB, below the noisy input
    # chunk is memory only: not part of a run's settings (checkpoints, benchmark caches)
    assert "chunk" not in model.options() and model.options()["propagation"] == "sequence"
    with pytest.raises(ConfigError, match="propagation"):
        STBN(propagation="global")
    with pytest.raises(ConfigError, match="chunk"):
        STBN(chunk=0)


def test_whole_sequence_memory_is_bounded_at_4x_frames() -> None:
    """Peak RSS of chunked whole-clip inference at 8 and 32 frames (fresh processes): it barely grows,
    while the same 32 frames in one chunk take several times as much (the control: the probe can fail)."""
    from bench.denoise_memory import measure

    small = {"width": 16, "blocks": 1}
    one, four = measure([8, 32], 4, 96, 128, small)
    assert four < 1.5 * one, (one, four)  # measured 47-49 -> 52-57 MiB
    (unchunked,) = measure([32], 32, 96, 128, small)
    assert unchunked > 2.5 * four, (four, unchunked)  # measured 205-213 MiB


def test_burn_in_states_come_from_the_frames_around_the_sub_clip_only() -> None:
    """Burn-in keeps training blind: the states a sub-clip receives are built from frames outside it."""
    t, h, w = 9, 10, 12
    clip, flows = _random_setup(t, h, w, seed=3)
    model = STBN(width=8, blocks=1, propagation="sequence")
    assert model.burn_in_frames == 4 and STBN().burn_in_frames == 0 and STBN(burn_in=2).burn_in_frames == 2
    net = model.build()
    area = (slice(None), slice(1, 9), slice(2, 10))
    fwd, back = model._burn_in(net, clip, flows, area, 3, 6, 2, 3)
    assert fwd.shape == back.shape == (1, 8, 8, 8) and fwd.abs().sum() > 0 and back.abs().sum() > 0
    inside = clip.clone()
    inside[3:6] = 255 - inside[3:6]
    assert all(torch.equal(a, b) for a, b in zip(model._burn_in(net, inside, flows, area, 3, 6, 2, 3), (fwd, back)))
    for frame, moved in ((1, 0), (8, 1)):  # a frame in the burn-in changes that side's state only
        other = clip.clone()
        other[frame] = 255 - other[frame]
        states = model._burn_in(net, other, flows, area, 3, 6, 2, 3)
        assert not torch.equal(states[moved], (fwd, back)[moved])
        assert torch.equal(states[1 - moved], (fwd, back)[1 - moved])
    zero = model._burn_in(net, clip, flows, area, 3, 6, 0, 0)
    assert all(s.abs().sum() == 0 for s in zero)
