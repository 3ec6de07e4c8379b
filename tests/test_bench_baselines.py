"""libx264/libx265 anchors on a tiny synthetic clip: exact bytes, quality ordering, option verification."""

import numpy as np
import pytest

from bench.baselines import (
    BaselineConfig,
    decode_baseline,
    decode_timing,
    encode_baseline,
    encode_stream,
    parse_info_sei,
    run_point,
    split_annexb,
)
from dnervcodec.errors import ConfigError
from dnervcodec.metrics import bpp
from tests.conftest import moving_shapes


@pytest.fixture(scope="module")
def frames():
    return moving_shapes(8, 64, 96)


@pytest.mark.parametrize("name", ["x264-medium-420", "x265-medium-444"])
def test_two_crf_points(frames, name):
    cfg = BaselineConfig.from_name(name)
    hi, lo = run_point(frames, 25.0, cfg, 22), run_point(frames, 25.0, cfg, 40)
    for p in (hi, lo):
        assert p["bytes"] > 0
        assert p["bpp"] == pytest.approx(bpp(p["bytes"], 8, 64, 96))
        assert 0 < p["ms-ssim-rgb"] <= 1 and p["encode_s"] > 0 and p["decode_s"] > 0
    assert hi["psnr-rgb"] > lo["psnr-rgb"] and hi["bytes"] > lo["bytes"]
    assert hi["ms-ssim-rgb"] > lo["ms-ssim-rgb"]


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_yuv444_crf0_is_near_lossless(frames, codec):
    cfg = BaselineConfig(codec=codec, preset="ultrafast", pix_fmt="yuv444p")
    assert run_point(frames[:3], 25.0, cfg, 0)["psnr-rgb"] > 45


def test_name_round_trip_and_config_dict():
    cfg = BaselineConfig.from_name("x265-veryslow-444")
    assert (cfg.codec, cfg.preset, cfg.pix_fmt, cfg.name) == ("libx265", "veryslow", "yuv444p", "x265-veryslow-444")
    assert BaselineConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        BaselineConfig.from_name("x266-medium-420")
    with pytest.raises(ConfigError):
        BaselineConfig(preset="medum")
    with pytest.raises(ConfigError, match="own fields"):
        BaselineConfig(options=(("preset", "slow"),))


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_misspelled_top_level_option_is_rejected(frames, codec):
    cfg = BaselineConfig(codec=codec, preset="ultrafast", options=(("tunee", "psnr"),))
    with pytest.raises(ConfigError, match="tunee"):
        encode_baseline(frames[:2], 25.0, cfg, 30)


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
@pytest.mark.parametrize("param", [("bframez", "2"), ("keyint", "abc")])
def test_bad_encoder_param_is_rejected(frames, codec, param):
    cfg = BaselineConfig(codec=codec, preset="ultrafast", params=(param,))
    with pytest.raises(ConfigError, match=param[0]):
        encode_baseline(frames[:2], 25.0, cfg, 30)


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_options_show_up_in_the_stream(frames, codec):
    cfg = BaselineConfig(codec=codec, preset="ultrafast", keyint=4, params=(("bframes", "1"),), strip_info_sei=False)
    enc = encode_stream(frames, 25.0, cfg, 27)
    sei = parse_info_sei(enc.data)
    assert sei == enc.encoder_options
    assert float(sei["crf"]) == 27 and sei["keyint"] == "4" and sei["bframes"] == "1"


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_info_sei_stripping_keeps_the_stream_decodable(frames, codec):
    kept = encode_stream(frames, 25.0, BaselineConfig(codec=codec, strip_info_sei=False), 30)
    stripped = encode_stream(frames, 25.0, BaselineConfig(codec=codec), 30)
    assert kept.info_sei_bytes == 0 and stripped.info_sei_bytes > 100
    assert len(stripped.data) + stripped.info_sei_bytes == len(kept.data)
    assert parse_info_sei(stripped.data) is None
    assert len(split_annexb(kept.data)) == len(split_annexb(stripped.data)) + 1
    a = decode_baseline(kept.data, BaselineConfig(codec=codec))
    b = decode_baseline(stripped.data, BaselineConfig(codec=codec))
    np.testing.assert_array_equal(a, b)
    assert a.shape == frames.shape


def test_odd_size_420_is_refused():
    with pytest.raises(ConfigError, match="even"):
        encode_baseline(moving_shapes(2, 33, 64), 25.0, BaselineConfig(codec="libx264"), 30)


def test_decode_timing(frames):
    data = encode_baseline(frames, 25.0, BaselineConfig(codec="libx265", preset="ultrafast"), 30)
    t = decode_timing(data, "libx265", repeats=2)
    assert t["frames"] == 8 and t["decode_fps"] > 0 and t["decode_rgb_fps"] > 0
    assert 0 < t["first_frame_s"] <= t["decode_rgb_s"]
