import pytest
import torch

from dnervcodec.errors import ConfigError
from dnervcodec.models.dnerv import (
    CCU,
    DNeRV,
    DecoderConfig,
    ModelConfig,
    build_config,
    count_params,
    decoder_params,
    decoder_shapes,
    frame_differences,
    stored_values,
)
from dnervcodec.models.sizing import budget_from_bpp, parse_budget, size_model
from dnervcodec.models.strides import derive_strides, fusion_stage


def test_paper_layout_at_640x1280():
    cfg = build_config(640, 1280, 96)
    dec = cfg.decoder
    assert dec.strides == (5, 4, 4, 2, 2)
    assert dec.embed_hw == (2, 4) and dec.embed_ch == 16  # 16x2x4 content embedding
    assert dec.diff_hw == (40, 80) and dec.diff_ch == 2  # 2x40x80 diff embedding
    assert dec.kernels == (1, 3, 5, 5, 5)
    assert fusion_stage(dec.strides, 16) == 2  # fused where the decoder map is 40x80


@pytest.mark.parametrize("size", [(160, 320), (320, 640), (96, 128), (64, 64)])
def test_any_factorable_size_builds_and_runs(size):
    h, w = size
    cfg = build_config(h, w, 16)
    model = DNeRV(cfg)
    x = torch.rand(2, 3, h, w)
    d = torch.rand(2, 6, h, w)
    content, diff = model.embed(x, d)
    assert content.shape[-2:] == cfg.decoder.embed_hw and diff.shape[-2:] == cfg.decoder.diff_hw
    assert model(x, d).shape == x.shape


def test_unfactorable_size_names_sizes_that_work():
    with pytest.raises(ConfigError, match=r"nearest sizes that work: \d+x\d+"):
        derive_strides(127, 211)
    msg = ""
    try:
        derive_strides(136, 320)
    except ConfigError as e:
        msg = str(e)
    for h, w in [tuple(map(int, s.split("x"))) for s in msg.split(": ")[-1].split(", ")]:
        assert derive_strides(h, w) is not None


def test_param_count_from_config_matches_module_and_roundtrips():
    for use_diff in (True, False):
        cfg = build_config(160, 320, 24, use_diff=use_diff)
        assert decoder_params(cfg.decoder) == count_params(DNeRV(cfg).decoder)
        assert decoder_shapes(cfg.decoder) == {k: tuple(v.shape) for k, v in DNeRV(cfg).decoder.state_dict().items()}
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
        assert DecoderConfig.from_dict(cfg.decoder.to_dict()) == cfg.decoder


@pytest.mark.parametrize("edit", [dict(lift_width=12.5), dict(lift_width=24.0), dict(lift_width="24"),
                                  dict(lift_width=True), dict(widths=[20.0, 17, 14, 12])])
def test_decoder_config_from_dict_takes_integers_only(edit):
    """A bitstream is untrusted: a width of 12.5 (or "24") was truncated to a width before; now it is refused."""
    d = {**build_config(160, 320, 24).decoder.to_dict(), **edit}
    with pytest.raises(ConfigError, match="not an integer"):
        DecoderConfig.from_dict(d)


def test_shapes_from_config_match_a_pruned_decoder():
    """Pruned widths (diff lift narrower than the diff branch, uneven stages) are read off the config alone."""
    from dataclasses import replace

    from dnervcodec.models.dnerv import Decoder

    dec = replace(build_config(160, 320, 24).decoder, lift_width=19, widths=(17, 13, 9, 6), diff_lift_width=7,
                  diff_width=11)
    assert decoder_shapes(dec) == {k: tuple(v.shape) for k, v in Decoder(dec).state_dict().items()}


def test_no_diff_ablation_has_no_diff_stream_and_same_strides():
    with_diff, without = build_config(160, 320, 24), build_config(160, 320, 24, use_diff=False)
    assert without.decoder.strides == with_diff.decoder.strides
    model = DNeRV(without)
    assert model.diff_encoder is None and not hasattr(model.decoder, "ccu")
    x = torch.rand(1, 3, 160, 320)
    assert model(x, None).shape == x.shape


def test_ccu_gating_formula():
    torch.manual_seed(0)
    ccu = CCU(4)
    c, d = torch.randn(1, 4, 5, 5), torch.randn(1, 4, 5, 5)
    cd = torch.cat([c, d], 1)
    p, s = torch.tanh(ccu.proposal(cd)), torch.sigmoid(ccu.gate(cd))
    torch.testing.assert_close(ccu(c, d), s * p + (1 - s) * c)
    with torch.no_grad():  # a closed gate passes the content through unchanged
        ccu.gate.weight.zero_()
        ccu.gate.bias.fill_(-50)
    torch.testing.assert_close(ccu(c, d), c, atol=1e-6, rtol=0)


def test_frame_differences_are_zero_at_the_ends():
    frames = torch.rand(3, 3, 4, 4)
    idx = torch.arange(3)
    prev, nxt = frames[(idx - 1).clamp_min(0)], frames[(idx + 1).clamp_max(2)]
    diff = frame_differences(prev, frames, nxt)
    assert torch.all(diff[0, :3] == 0) and torch.all(diff[2, 3:] == 0)
    torch.testing.assert_close(diff[1, :3], frames[1] - frames[0])
    torch.testing.assert_close(diff[1, 3:], frames[2] - frames[1])


def test_budget_strings():
    assert parse_budget("0.35M") == 350_000
    assert parse_budget("85k") == 85_000
    assert parse_budget("120000") == 120_000
    for bad in ("lots", "", "-5k", "3G", "10"):
        with pytest.raises(ConfigError):
            parse_budget(bad)
    assert budget_from_bpp(0.1, 132, 160, 320) == 84_480


@pytest.mark.parametrize("use_diff", [True, False])
def test_sizing_counts_embeddings_and_fits_the_budget(use_diff):
    budget = 85_000
    s = size_model(160, 320, 132, budget, use_diff)
    assert s.stored == stored_values(s.config.decoder, 132) <= budget
    assert s.stored > 0.85 * budget  # the widest model that fits, not a tiny one
    embeddings = s.stored - decoder_params(s.config.decoder)
    assert embeddings == 132 * s.config.decoder.embedding_values_per_frame()


def test_sizing_keeps_the_paper_layout_when_affordable_and_errors_when_too_small():
    assert size_model(640, 1280, 132, 3_000_000).diff_stride == 16
    with pytest.raises(ConfigError, match="too small"):
        size_model(160, 320, 132, 5_000)
