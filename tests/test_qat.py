"""Quantization-aware fine-tuning: it lowers the loss of coarse quantization, predicts the decoded PSNR, resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnervcodec.codec import EncodeConfig, _embeddings, decode, encode_video
from dnervcodec.errors import FitInterrupted
from dnervcodec.fit import ClipTensor, FitConfig, fit
from dnervcodec.metrics import psnr
from dnervcodec.models.sizing import size_model
from dnervcodec.qat import qat_config, tune_quantized
from dnervcodec.video import Video
from tests.conftest import InterruptAfter, moving_shapes


def test_qat_recovers_what_3_bit_quantization_loses_and_predicts_the_decoded_psnr() -> None:
    frames = moving_shapes(8, 32, 64)
    video = Video(frames, 25.0, (32, 64))
    base = EncodeConfig(size="20k", bits=3, fit=FitConfig(epochs=30), device="cpu")
    plain = encode_video(video, base, progress=False)
    tuned = encode_video(video, EncodeConfig(**{**base.__dict__, "qat_epochs": 10}), progress=False)
    plain_psnr = psnr(frames, decode(plain.data)[0])
    tuned_psnr = psnr(frames, decode(tuned.data)[0])
    before, after = tuned.psnr_qat
    assert before == pytest.approx(plain_psnr, abs=0.01)  # the fake quantizer sees what the decoder sees
    assert after == pytest.approx(tuned_psnr, abs=0.01)
    assert tuned_psnr > plain_psnr + 0.25  # measured: 18.79 -> 19.30 dB
    assert abs(len(tuned.data) - len(plain.data)) < 0.02 * len(plain.data)  # same model, about the same bytes


def test_interrupted_fine_tuning_resumes_to_the_same_tensors(tmp_path) -> None:
    frames = moving_shapes(6, 32, 64)
    sizing = size_model(32, 64, 6, 20_000)
    fitted = fit(frames, sizing.config, FitConfig(epochs=3), "cpu", progress=False)
    content, diff = _embeddings(fitted.model, ClipTensor(frames, torch.device("cpu")))
    cfg = qat_config(FitConfig(epochs=3), epochs=4)

    def run(**kwargs):
        decoder = type(fitted.model.decoder)(fitted.model.decoder.cfg)
        decoder.load_state_dict(fitted.model.decoder.state_dict())
        return tune_quantized(frames, decoder, content, diff, 4, cfg, "cpu", **kwargs)

    content_before = content.copy()
    straight = run(progress=False)
    assert np.array_equal(content, content_before), "fine-tuning must not change the caller's embeddings"
    with pytest.raises(FitInterrupted, match="--resume"):
        run(progress=InterruptAfter(9), run_dir=tmp_path)
    resumed = run(progress=False, run_dir=tmp_path, resume=True)
    assert np.array_equal(resumed.content, straight.content) and np.array_equal(resumed.diff, straight.diff)
    for (k, a), b in zip(straight.decoder.state_dict().items(), resumed.decoder.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.psnr_after == straight.psnr_after
