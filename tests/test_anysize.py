"""Any frame size: frames are padded to a size the strides can build, and decoding crops them back."""

import numpy as np
import pytest

from dnervcodec.bitstream import read_container, write_container
from dnervcodec.cli import main
from dnervcodec.codec import EncodeConfig, decode, encode_video, parse, plan_encode
from dnervcodec.errors import BitstreamError
from dnervcodec.fit import FitConfig
from dnervcodec.models.padding import buildable, coded_size, pad_frames
from dnervcodec.video import Video, read_video, write_video
from tests.conftest import moving_shapes


@pytest.mark.parametrize("size, coded", [((127, 211), (128, 224)), ((27, 45), (32, 48)), ((17, 31), (32, 32)),
                                         ((160, 320), (160, 320)), ((1080, 1920), (1088, 1920)), ((1, 1), (32, 32))])
def test_coded_size_is_the_smallest_buildable_padding(size, coded):
    assert coded_size(*size) == coded and buildable(*coded)
    h, w = size
    # nothing smaller in area covers the frame: every buildable size needs both sides >= it
    assert all(not buildable(a, b) for a in range(h, coded[0] + 1) for b in range(w, coded[1] + 1)
               if a * b < coded[0] * coded[1] and a * b < 5000)


def test_padding_replicates_the_bottom_and_right_edges():
    frames = moving_shapes(2, 17, 31)
    padded = pad_frames(frames, (32, 32))
    assert padded.shape == (2, 32, 32, 3)
    assert np.array_equal(padded[:, :17, :31], frames)
    assert np.array_equal(padded[:, 20, :31], frames[:, 16]) and np.array_equal(padded[:, 5, 31], frames[:, 5, 30])
    assert pad_frames(frames[:, :16, :16], (16, 16)) is not None


@pytest.mark.parametrize("h, w", [(27, 45), (33, 50), (17, 31)])
def test_odd_sizes_encode_and_decode_to_the_source_size(h, w, tmp_path, capsys):
    src = write_video(tmp_path / "clip.y4m", moving_shapes(8, h, w))
    out = tmp_path / "clip.dnerv"
    assert main(["encode", str(src), "--size", "6k", "--epochs", "2", "--quiet", "--device", "cpu",
                 "-o", str(out)]) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert f"8 frames {h}x{w} (coded " in stdout
    frames, header = decode(out.read_bytes())
    assert frames.shape == (8, h, w, 3)
    ch, cw = header["video"]["coded_size"]
    assert ch >= h and cw >= w and (ch, cw) != (h, w) and buildable(ch, cw)
    assert main(["decode", str(out), "-o", str(tmp_path / "dec.y4m")]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0 and f"coded {ch}x{cw}, cropped on decode" in capsys.readouterr().out
    assert read_video(tmp_path / "dec.y4m").frames.shape == (8, h, w, 3)


def test_a_buildable_size_writes_no_coded_size(tmp_path):
    video = Video(moving_shapes(4, 32, 64), 25.0, (32, 64))
    cfg = EncodeConfig(size="6k", fit=FitConfig(epochs=1, seed=0), device="cpu")
    report = encode_video(video, cfg, progress=False)
    assert report.coded_size is None and "coded_size" not in parse(report.data).video


def test_psnr_is_measured_on_the_cropped_frames(tmp_path):
    frames = moving_shapes(4, 27, 45)
    report = encode_video(Video(frames, 25.0, (27, 45)),
                          EncodeConfig(size="6k", fit=FitConfig(epochs=2, seed=0), device="cpu"), progress=False)
    assert report.encoded_frames.shape == frames.shape and report.coded_size == (32, 48)
    assert (report.height, report.width) == (27, 45) and report.decoder_config.height == 32


def test_a_budget_too_small_grows_with_a_note(tmp_path, capsys):
    src = write_video(tmp_path / "clip.y4m", moving_shapes(8, 27, 45))
    out = tmp_path / "clip.dnerv"
    assert main(["encode", str(src), "--size", "1k", "--epochs", "2", "--quiet", "--device", "cpu",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "--size 1k cannot hold the smallest model" in notes[0] and "kB" in notes[0]
    assert decode(out.read_bytes())[0].shape == (8, 27, 45, 3)
    plan = plan_encode(EncodeConfig(bpp=0.001), 8, 27, 45)
    assert plan.sizing.asked is not None and "a target of 0.001 bpp" in plan.notes[0]
    assert plan_encode(EncodeConfig(size="20k"), 8, 27, 45).notes == ()


def test_a_little_more_padding_when_it_lets_a_coarser_layout_fit_the_budget():
    """QCIF (144x176) builds only with the diff stream at 1/16, whose embeddings exceed 0.1 bpp: padded
    to 192x192 it takes the 1/64 layout and meets the target instead of growing the file."""
    plan = plan_encode(EncodeConfig(), 132, 144, 176)
    assert plan.notes == () and plan.coded == (192, 192) and plan.sizing.diff_stride == 64
    assert plan.sizing.stored <= plan.sizing.budget
    assert plan_encode(EncodeConfig(), 132, 160, 320).coded == (160, 320)  # no padding when it fits as it is


def _with_coded_size(data: bytes, value) -> bytes:
    c = read_container(data)
    c.header["video"]["coded_size"] = value
    return write_container(c)


@pytest.fixture(scope="module")
def padded_file() -> bytes:
    video = Video(moving_shapes(2, 17, 31), 25.0, (17, 31))
    return encode_video(video, EncodeConfig(size="4k", fit=FitConfig(epochs=1, seed=0), device="cpu"),
                        progress=False).data


@pytest.mark.parametrize("bad", [[16, 32], [32, 30], [32, 200], [32], "32x32", [32.0, 32], [True, 32], None])
def test_parse_refuses_a_coded_size_that_is_not_a_padding(padded_file, bad):
    with pytest.raises(BitstreamError, match="coded"):
        parse(_with_coded_size(padded_file, bad))


def test_parse_refuses_a_coded_size_that_disagrees_with_the_decoder(padded_file):
    assert parse(padded_file).video["coded_size"] == [32, 32]
    with pytest.raises(BitstreamError, match="does not match"):
        parse(_with_coded_size(padded_file, [48, 32]))
    c = read_container(padded_file)
    del c.header["video"]["coded_size"]
    with pytest.raises(BitstreamError, match="does not match"):  # without it, the decoder must be 17x31
        parse(write_container(c))
