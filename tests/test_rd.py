"""Rate-distortion fine-tuning: learned steps, a rate that matches the file, lambda that follows the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnervcodec.codec import EncodeConfig, _embeddings, decode, encode_video
from dnervcodec.compress.models import bin_mass, laplace_bits
from dnervcodec.compress.quant import dequantize, quantize_step
from dnervcodec.errors import FitInterrupted
from dnervcodec.fit import ClipTensor, FitConfig, fit
from dnervcodec.metrics import psnr
from dnervcodec.models.sizing import size_model
from dnervcodec.qat import qat_config
from dnervcodec.rd import rd_tune
from dnervcodec.video import Video
from tests.conftest import InterruptAfter, moving_shapes


@pytest.mark.parametrize("model", ["laplace", "gaussian"])
def test_one_model_definition_gives_the_same_mass_in_numpy_and_torch(model: str) -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(0, 20, 200)
    mean, scale = np.full(200, 3.0), rng.uniform(0.1, 30, 200)
    a, b = v - 0.5, v + 0.5
    ref = bin_mass(model, a, b, mean, scale)
    got = bin_mass(model, *(torch.tensor(x, dtype=torch.float64) for x in (a, b, mean, scale))).numpy()
    assert np.allclose(got, ref, rtol=1e-9, atol=1e-12)  # torch and scipy erfc differ in the far tail
    assert np.all((ref >= 0) & (ref <= 1))
    assert bin_mass(model, np.array(-np.inf), np.array(np.inf), 0.0, 1.0) == pytest.approx(1.0)


def test_laplace_bits_are_differentiable() -> None:
    y = torch.tensor([0.0, 1.0, 4.0], requires_grad=True)
    bits = laplace_bits(y, torch.tensor(0.0), torch.tensor(1.0)).sum()
    bits.backward()
    assert y.grad[0] == 0 and y.grad[1] > 0 and y.grad[2] > 0  # moving away from the centre costs bits


@pytest.mark.parametrize("axis", [None, 0])
def test_step_quantizer_is_zero_centred_and_within_half_a_step(axis) -> None:
    rng = np.random.default_rng(1)
    x = (rng.laplace(0, 0.05, (6, 4, 3, 3))).astype(np.float32)
    step = np.full(6 if axis == 0 else 1, 0.01)
    symbols, quant = quantize_step(x, step, axis)
    back = dequantize(symbols, quant)
    assert np.abs(back - x).max() <= 0.5 * float(quant.scale.max()) * (1 + 1e-3)
    assert quant.bits == int(np.ceil(np.log2(2 * np.abs(np.rint(x / 0.01)).max() + 2)))  # fewest bits that hold them
    zero = dequantize(np.full(x.size, 1 << (quant.bits - 1)), quant)
    assert np.all(zero == 0)  # the symbol in the middle is exactly zero


def test_rd_encode_decodes_to_its_prediction_and_its_rate_follows_the_target() -> None:
    frames = moving_shapes(8, 32, 64)
    video = Video(frames, 25.0, (32, 64))
    base = dict(bpp=4.0, fit=FitConfig(epochs=30), device="cpu", rd_epochs=20, value_bits=4.0)
    big = encode_video(video, EncodeConfig(**base), progress=False)
    small = encode_video(video, EncodeConfig(**{**base, "bpp": 2.5}), progress=False)
    for report in (big, small):
        decoded = decode(report.data)[0]
        assert report.psnr_qat[1] == pytest.approx(psnr(frames, decoded), abs=0.02)  # the fit sees the decoder's frames
        assert report.predicted_bits / 8 == pytest.approx(len(report.data), rel=0.05)
    # the file lands at its target: lambda starts at the target's slope and only corrects from there
    for report, bpp in ((big, 4.0), (small, 2.5)):
        assert len(report.data) * 8 / frames[..., 0].size == pytest.approx(bpp, rel=0.1)
    assert len(small.data) < 0.8 * len(big.data)  # a lower target gives a smaller file
    # the same model at 8-bit min/max quantization costs far more than the rate-distortion file of it
    ptq = encode_video(video, EncodeConfig(**{**base, "rd_epochs": 0, "size": f"{big.sizing.stored}"}), progress=False)
    assert len(big.data) < 0.85 * len(ptq.data)  # measured 0.78 after these 20 epochs (160 steps)


def test_interrupted_rd_fine_tuning_resumes_to_the_same_file(tmp_path) -> None:
    frames = moving_shapes(6, 32, 64)
    sizing = size_model(32, 64, 6, 20_000)
    fitted = fit(frames, sizing.config, FitConfig(epochs=3), "cpu", progress=False)
    content, diff = _embeddings(fitted.model, ClipTensor(frames, torch.device("cpu")))
    cfg = qat_config(FitConfig(epochs=3), epochs=4)

    def run(**kwargs):
        decoder = type(fitted.model.decoder)(fitted.model.decoder.cfg)
        decoder.load_state_dict(fitted.model.decoder.state_dict())
        return rd_tune(frames, decoder, content, diff, cfg, 60_000.0, device="cpu", **kwargs)

    straight = run(progress=False)
    with pytest.raises(FitInterrupted, match="--resume"):
        run(progress=InterruptAfter(9), run_dir=tmp_path)
    resumed = run(progress=False, run_dir=tmp_path, resume=True)
    assert straight.tensors.keys() == resumed.tensors.keys()
    for name, (sym, quant, _) in straight.tensors.items():
        assert np.array_equal(sym, resumed.tensors[name][0]) and quant == resumed.tensors[name][1], name
    assert resumed.lam == straight.lam
