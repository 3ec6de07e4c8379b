from fractions import Fraction

import av
import numpy as np
import pytest

from dnervcodec.errors import ConfigError, InputError
from dnervcodec.video import Video, centre_crop_box, parse_resolution, read_video, write_video
from tests.conftest import moving_shapes


RATES = [Fraction(30000, 1001), Fraction(24000, 1001), Fraction(60000, 1001), Fraction(25), Fraction(2997, 100)]


@pytest.mark.parametrize("name", ["a.mkv", "a.mp4", "frames/"])
def test_lossless_outputs_give_back_every_value_bit_exact(tmp_path, name):
    frames = np.random.default_rng(1).integers(0, 256, (3, 32, 64, 3), dtype=np.uint8)  # every value, no structure
    frames[0, 0, :3] = [[0, 0, 0], [255, 255, 255], [255, 0, 0]]
    video = read_video(write_video(tmp_path / name, frames, fps=24))
    assert video.frames.dtype == np.uint8 and np.array_equal(video.frames, frames)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".y4m"])
@pytest.mark.parametrize("rate", RATES, ids=str)
def test_fractional_frame_rates_round_trip_exactly(tmp_path, suffix, rate):
    video = read_video(write_video(tmp_path / f"a{suffix}", moving_shapes(2, 16, 32), fps=rate))
    assert video.rate == rate and isinstance(video.rate, Fraction) and video.fps == float(rate)


def test_a_folder_of_pngs_holds_no_rate(tmp_path):
    assert read_video(write_video(tmp_path / "frames", moving_shapes(2, 16, 32), fps=Fraction(30000, 1001))).rate == 25


def test_matroska_alone_rounds_the_rate_and_our_tag_restores_it(tmp_path):
    import dnervcodec.video as video_module

    path = write_video(tmp_path / "a.mkv", moving_shapes(2, 16, 32), fps=Fraction(60000, 1001))
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == Fraction(19001, 317)  # whole-nanosecond frame durations
        assert c.streams.video[0].metadata[video_module.RATE_TAG] == "60000/1001"
    assert read_video(path).rate == Fraction(60000, 1001)


def test_a_tag_that_disagrees_with_the_stream_is_ignored(tmp_path, monkeypatch):
    import dnervcodec.video as video_module

    path = write_video(tmp_path / "a.mkv", moving_shapes(2, 16, 32), fps=25)
    monkeypatch.setattr(video_module, "RATE_TAG", "NOT_THERE")  # a file without the tag: the stream's rate
    assert read_video(path).rate == 25
    monkeypatch.undo()
    real = video_module._stream_rate

    class Stream:  # a remuxed file whose stale tag says 50 fps while the stream plays at 25
        average_rate, guessed_rate, metadata = Fraction(25), None, {video_module.RATE_TAG: "50/1"}

    assert real(Stream()) == 25
    Stream.metadata = {video_module.RATE_TAG: "garbage"}
    assert real(Stream()) == 25


def test_video_takes_a_float_or_a_fraction():
    frames = moving_shapes(1, 8, 8)
    assert Video(frames, 30000 / 1001, (8, 8)).rate == Fraction(30000, 1001)  # the float old headers hold
    v = Video(frames, Fraction(24000, 1001), (8, 8))
    assert v.rate == Fraction(24000, 1001) and v.fps == 24000 / 1001 and isinstance(v.fps, float)
    assert Video(frames, 25.0, (8, 8), rate=Fraction(50)).fps == 50.0  # the exact rate wins


def test_y4m_is_bt601_limited_range_444_and_at_most_2_off(tmp_path):
    """What docs/compression.md states about .y4m, measured over all 2^24 RGB colours in one 4096x4096 frame."""
    r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij")
    colours = np.stack([r, g, b], -1).reshape(1, 4096, 4096, 3).astype(np.uint8)
    path = write_video(tmp_path / "all.y4m", colours, fps=Fraction(30000, 1001))
    header = path.read_bytes()[:100].split(b"\n")[0].decode()
    assert header == "YUV4MPEG2 W4096 H4096 F30000:1001 Ip A0:0 C444 XYSCSS=444 XCOLORRANGE=LIMITED"
    err = np.abs(read_video(path).frames.astype(np.int16) - colours)
    assert err.max() == 2 and 0.39 < err.mean() < 0.41 and 0.15 < (err.max(-1) == 0).mean() < 0.17
    planes = np.frombuffer(path.read_bytes(), np.uint8, offset=len(header) + 1 + len(b"FRAME\n")).reshape(3, -1)
    at = lambda rgb: planes[:, (rgb[0] * 256 + rgb[1]) * 256 + rgb[2]].tolist()  # noqa: E731
    assert at((0, 0, 0)) == [16, 128, 128] and at((255, 255, 255)) == [235, 128, 128]  # limited range
    assert at((255, 0, 0)) == [81, 90, 240]  # BT.601 (Y = 16 + 219 * 0.299); BT.709 would give Y = 63


def test_frame_range_crop_and_resize(tmp_path):
    frames = moving_shapes(10, 48, 64)
    path = write_video(tmp_path / "a.mkv", frames)
    video = read_video(path, resolution=(16, 32), start=3, num_frames=4)
    assert video.frames.shape == (4, 16, 32, 3)
    # 48x64 -> centre crop 32x64 (rows 8..40) -> 2x area downscale
    expected = frames[3:7, 8:40].reshape(4, 16, 2, 32, 2, 3).mean((2, 4)).round()
    assert np.abs(video.frames.astype(float) - expected).max() <= 1
    assert video.source_size == (48, 64)


def test_centre_crop_box_matches_nerv_bunny():
    assert centre_crop_box(720, 1280, (1, 2)) == (40, 0, 640, 1280)
    assert centre_crop_box(720, 1280, (160, 320)) == (40, 0, 640, 1280)


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video\n" * 50)
    with pytest.raises(InputError, match="not a readable video"):
        read_video(junk)
    with pytest.raises(ConfigError, match="past the end: the clip has 3 frames"):
        read_video(write_video(tmp_path / "a.mkv", moving_shapes(3)), start=10)
    with pytest.raises(ConfigError):
        parse_resolution("160by320")
    with pytest.raises(ConfigError):
        write_video(tmp_path / "a.avi", moving_shapes(2))


def test_zero_frame_video(tmp_path):
    path = tmp_path / "empty.y4m"
    path.write_bytes(b"YUV4MPEG2 W32 H32 F25:1 Ip A1:1 C444\n")  # a valid stream header, then no frames
    assert av.open(str(path)).streams.video[0].codec_context.width == 32
    with pytest.raises(InputError, match="no frames"):
        read_video(path)


def test_sample_clips_are_found():
    from dnervcodec.video import sample_path

    for name in ("bunny", "bikes", "carphone"):
        assert sample_path(name).is_file()
    with pytest.raises(ConfigError, match="unknown sample"):
        sample_path("nope")


def write_images(folder, names, sizes=None):
    """One PNG per name; image i is a flat grey of value 10*i, so the order read back shows in the pixels."""
    from dnervcodec.video import png_bytes

    folder.mkdir()
    for i, name in enumerate(names):
        h, w = sizes[i] if sizes else (16, 32)
        (folder / name).write_bytes(png_bytes(np.full((h, w, 3), 10 * i, np.uint8)))
    return folder


@pytest.mark.parametrize("pattern", ["{}.png", "{:03d}.png", "frame_{}.png", "Shot 2 take {:02d}.PNG"])
def test_image_folders_are_read_in_natural_order(tmp_path, pattern):
    names = [pattern.format(n) for n in range(1, 13)]
    folder = write_images(tmp_path / "seq", names)
    frames = read_video(folder).frames
    assert frames[:, 0, 0, 0].tolist() == [10 * i for i in range(12)]  # 1, 2, ..., 12, not 1, 10, 11, 12, 2, ...


def test_natural_key_orders_numbers_as_numbers():
    from dnervcodec.video import natural_key

    names = ["b10.png", "a2.png", "a10.png", "a1.png", "A3.png", "a01.png", "x.png"]
    assert sorted(names, key=natural_key) == ["a01.png", "a1.png", "a2.png", "A3.png", "a10.png", "b10.png", "x.png"]


def test_hidden_files_in_an_image_folder_are_skipped(tmp_path):
    folder = write_images(tmp_path / "seq", ["1.png", "2.png"])
    (folder / "._1.png").write_bytes(b"macOS resource fork, not an image")
    assert read_video(folder).frames.shape[0] == 2


def test_images_of_mixed_sizes_name_the_first_odd_file(tmp_path, capsys):
    from dnervcodec.cli import main

    folder = write_images(tmp_path / "seq", ["1.png", "2.png", "10.png", "11.png"],
                          sizes=[(16, 32), (16, 32), (8, 32), (16, 16)])
    with pytest.raises(InputError, match=r"10\.png is 8x32 but 1\.png is 16x32"):
        read_video(folder)
    with pytest.raises(InputError, match="10.png"):
        read_video(folder, resolution=(8, 16))  # cropping to one size would hide the mix: still an error
    code = main(["fit", str(folder), "--epochs", "1", "--quiet", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "10.png" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
