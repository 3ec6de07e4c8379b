"""One frame-range rule and one message for reading (encode, fit, denoise) and decoding; one-line notes for
what reading drops or changes (audio, alpha, variable timing); plurals and durations in messages."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

from dnervcodec.cli import main
from dnervcodec.codec import decode
from dnervcodec.errors import ConfigError
from dnervcodec.models.sizing import budget_from_bpp, size_model
from dnervcodec.ranges import frame_range
from dnervcodec.video import read_video, write_video
from dnervcodec.wording import duration, plural
from tests.conftest import moving_shapes

DNERV_6 = Path(__file__).parent / "data" / "format-2.0.dnerv"  # a 6-frame 32x64 file


@pytest.mark.parametrize("start,count,total,message", [
    (5, 100, 8, "--start 5 --frames 100 asks for frames 5 to 104, but the clip has 8 frames (0 to 7): "
                "use --frames 3 or fewer, or leave --frames out to go to the end"),
    (8, None, 8, "--start 8 is past the end: the clip has 8 frames (0 to 7)"),
    (8, 3, 8, "--start 8 is past the end: the clip has 8 frames (0 to 7)"),
    (0, 2, 1, "--start 0 --frames 2 asks for frames 0 to 1, but the clip has 1 frame (0): use --frames 1 or fewer"),
    (3, 1, 2, "--start 3 is past the end: the clip has 2 frames (0 to 1)"),
])
def test_one_rule_names_the_clip_length(start, count, total, message):
    with pytest.raises(ConfigError) as e:
        frame_range(start, count, total)
    assert str(e.value).startswith(message)
    assert ".." not in str(e.value) and "-1" not in str(e.value) and "-3" not in str(e.value)


def test_ranges_inside_the_clip():
    assert frame_range(0, None, 8) == (0, 8)
    assert frame_range(5, 3, 8) == (5, 8)
    assert frame_range(7, 1, 8) == (7, 8)


@pytest.mark.parametrize("start,count", [(5, 100), (6, None), (0, 7)])
def test_reading_and_decoding_give_the_same_message(start, count, tmp_path):
    clip = write_video(tmp_path / "six.mkv", moving_shapes(6, 32, 64))
    with pytest.raises(ConfigError) as read_error:
        read_video(clip, start=start, num_frames=count)
    with pytest.raises(ConfigError) as decode_error:
        decode(DNERV_6, start, count)
    assert str(read_error.value) == str(decode_error.value)
    assert "the clip has 6 frames (0 to 5)" in str(read_error.value)


def test_encode_and_decode_commands_refuse_the_same_way(tmp_path, capsys):
    clip = write_video(tmp_path / "six.mkv", moving_shapes(6, 32, 64))
    assert main(["encode", str(clip), "--start", "5", "--frames", "100", "-o", str(tmp_path / "x.dnerv")]) == 2
    encode_err = capsys.readouterr().err
    assert main(["decode", str(DNERV_6), "--start", "5", "--frames", "100", "-o", str(tmp_path / "x.mkv")]) == 2
    decode_err = capsys.readouterr().err
    assert encode_err.splitlines() == ["dnerv encode: error: --start 5 --frames 100 asks for frames 5 to 104, but the "
                                       "clip has 6 frames (0 to 5): use --frames 1 or fewer, or leave --frames out to "
                                       "go to the end"]
    assert decode_err.replace("dnerv decode", "dnerv encode") == encode_err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["six.mkv"]


def test_a_range_at_the_end_of_a_folder_of_images(tmp_path):
    folder = tmp_path / "frames"
    write_video(str(folder) + "/", moving_shapes(3, 32, 64))
    assert read_video(folder, start=2, num_frames=1).frames.shape[0] == 1
    with pytest.raises(ConfigError, match=r"the clip has 3 frames \(0 to 2\)"):
        read_video(folder, start=2, num_frames=2)


# ---------------------------------------------------------------------------------------------- notes


def _write(path: Path, pix_fmt: str, pts: list[int] | None = None, audio: bool = False, alpha: bool = False) -> Path:
    frames = moving_shapes(6, 32, 64)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, pix_fmt
        stream.time_base = fractions.Fraction(1, 1000)
        sound = out.add_stream("pcm_s16le", rate=8000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i, f in enumerate(frames):
            if alpha:
                f = np.concatenate([f, np.full(f.shape[:2] + (1,), 128, np.uint8)], -1)
            vf = av.VideoFrame.from_ndarray(f, format="rgba" if alpha else "rgb24").reformat(format=pix_fmt)
            vf.pts, vf.time_base = (pts[i] if pts else 40 * i), fractions.Fraction(1, 1000)
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
        if sound is not None:
            samples = av.AudioFrame.from_ndarray(np.zeros((1, 1920), np.int16), format="s16", layout="mono")
            samples.sample_rate = 8000
            out.mux(sound.encode(samples))
            out.mux(sound.encode(None))
    return path


def test_constant_timing_no_audio_no_alpha_gives_no_note(tmp_path):
    assert read_video(_write(tmp_path / "plain.mkv", "bgr0")).notes == ()


@pytest.mark.parametrize("kind,note", [
    ("vfr", "variable frame rate: the timing becomes constant, 25 fps"),
    ("alpha", "the alpha channel is dropped: frames are read as opaque RGB"),
    ("audio", "an audio track is dropped: a .dnerv file holds the picture only"),
])
def test_what_reading_drops_or_changes_is_one_note(kind, note, tmp_path, capsys):
    path = tmp_path / f"{kind}.mkv"
    if kind == "vfr":
        _write(path, "bgr0", pts=[0, 40, 80, 200, 240, 400])
    else:
        _write(path, "bgra" if kind == "alpha" else "bgr0", audio=kind == "audio", alpha=kind == "alpha")
    video = read_video(path)
    assert video.notes == (note,) and video.frames.shape == (6, 32, 64, 3)
    assert main(["denoise", str(path), "--method", "nlm", "--sigma", "5", "--quiet", "-o", str(tmp_path / "o.mkv")]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == [f"dnerv denoise: note: {note}"]


def test_alpha_in_every_image_of_a_folder_is_one_note(tmp_path):
    folder = tmp_path / "rgba"
    folder.mkdir()
    for i in range(3):
        rgba = np.concatenate([moving_shapes(1, 32, 64)[0], np.full((32, 64, 1), 200, np.uint8)], -1)
        with av.open(str(folder / f"{i}.png"), "w", format="image2") as out:
            s = out.add_stream("png", rate=1)
            s.width, s.height, s.pix_fmt = 64, 32, "rgba"
            out.mux(s.encode(av.VideoFrame.from_ndarray(rgba, format="rgba")))
            out.mux(s.encode(None))
    assert read_video(folder).notes == ("the alpha channel is dropped: frames are read as opaque RGB",)


# ---------------------------------------------------------------------------------------------- wording


def test_plurals_and_durations():
    assert [plural(n, "frame") for n in (0, 1, 2)] == ["0 frames", "1 frame", "2 frames"]
    assert [duration(s) for s in (0.04, 3.2, 42.4, 59.4, 59.6, 150, 7300)] == [
        "0.0 s", "3.2 s", "42 s", "59 s", "1.0 min", "2.5 min", "2.0 h"]


def test_a_one_frame_decode_says_1_frame(tmp_path, capsys):
    assert main(["decode", str(DNERV_6), "--start", "5", "-o", str(tmp_path / "last.mkv")]) == 0
    assert capsys.readouterr().out.strip().endswith("last.mkv: 1 frame 32x64")


def test_too_small_budget_advice_fits_the_kind_of_budget():
    """With --bpp the budget grows with the clip: more frames help (8 fail where 40 work), not fewer."""
    per_bpp = budget_from_bpp(0.1, 8, 160, 320)
    with pytest.raises(ConfigError, match=r"use at least about \d+ frames") as e:
        size_model(160, 320, 8, per_bpp, budget_per_frame=per_bpp / 8)
    assert "fewer" not in str(e.value) and "--bpp" in str(e.value)
    size_model(160, 320, 40, budget_from_bpp(0.1, 40, 160, 320), budget_per_frame=budget_from_bpp(0.1, 1, 160, 320))
    with pytest.raises(ConfigError, match=r"raise --size to at least \d+, use at most about \d+ frames"):
        size_model(160, 320, 132, 20_000)
