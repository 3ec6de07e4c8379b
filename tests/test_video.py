import av
import numpy as np
import pytest

from dnervcodec.errors import ConfigError, InputError
from dnervcodec.video import centre_crop_box, parse_resolution, read_video, write_video
from tests.conftest import moving_shapes


@pytest.mark.parametrize("name", ["a.mkv", "a.mp4", "frames/"])
def test_lossless_round_trip(tmp_path, name):
    frames = moving_shapes(5, 32, 64)
    path = write_video(tmp_path / name, frames, fps=24)
    video = read_video(path)
    assert video.frames.shape == frames.shape
    np.testing.assert_array_equal(video.frames, frames)


def test_y4m_round_trip_is_near_lossless(tmp_path):
    frames = moving_shapes(4, 32, 64)
    video = read_video(write_video(tmp_path / "a.y4m", frames))
    assert np.abs(video.frames.astype(int) - frames).max() <= 3  # 4:4:4 YUV rounding only


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
