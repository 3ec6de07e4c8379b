"""libx264 / libx265 anchors through PyAV: encode RGB frames, count the exact bytes, decode, measure.

    cfg = BaselineConfig.from_name("x265-medium-444")
    point = run_point(frames, fps, cfg, crf=32)   # {"bpp", "psnr-rgb", "ms-ssim-rgb", "encode_s", ...}

Choices made here, and why:

* **Raw Annex-B elementary streams** (muxer ``h264`` / ``hevc``) written into memory. Parameter sets
  (VPS/SPS/PPS) travel in-band, so ``len(stream)`` is every byte a decoder needs; an mp4 would move them
  into ``extradata`` where a sum over packets misses them.
* **The encoder's informational SEI is stripped** (``strip_info_sei=True``). x264 and x265 write their
  version and full option string into a user-data-unregistered SEI NAL unit in the first access unit
  (about 0.6 KB for x264 and 2-3 KB for x265). It is not needed to decode (x265 can be told not to write
  it with ``--no-info``; x264 has no switch), and at 0.02 bpp on a 132-frame 160x320 clip it would be over
  10 % of the rate: keeping it would flatter any competitor. We first read that string to verify the
  options (below), then drop the NAL unit and decode the stripped stream, so the counted bytes are proven
  decodable. Each point also records ``info_sei_bytes`` so the unstripped size is ``bytes +
  info_sei_bytes``. Set ``strip_info_sei=False`` to count the stream exactly as the encoder wrote it.
* **Colour**: RGB -> Y'CbCr with the **BT.709 matrix, limited ("tv", 16-235/240) range**, the way
  HD video ships; the stream's VUI is tagged BT.709 primaries / transfer / matrix and limited range, and
  the decoder checks those tags and converts back with the same matrix and range. The conversion runs in
  libswscale with ``ACCURATE_RND``; for 4:2:0 the chroma is filtered bicubic (FFmpeg's default scaler) with
  full-resolution chroma input on the way in and full chroma interpolation on the way out. Round trip
  without coding on Bunny 160x320: 52.1 dB for 4:4:4 (swscale's full-range path is less precise, 48.6 dB,
  one more reason for limited range) and about 38 dB for 4:2:0, which is the ceiling chroma
  subsampling puts on every yuv420p anchor with this small, sharp-chroma content.
* **GOP**: the encoder's defaults (x264 and x265 ``keyint=250`` with scene-cut detection, preset-default
  B-frames: 3 for x264 medium, 4 for x265 medium, 8 for veryslow, open-GOP as the preset says), so a clip
  of up to 250 frames (all of Bunny's 132) is one GOP plus any scene-cut I-frames. ``keyint`` can be set.
* **Threads**: ``threads=1`` by default. x264 and x265 bitstreams depend on the thread count, so a fixed
  count makes results reproducible across machines, and it gives a clean per-core speed on a shared box.
* **Option verification**: PyAV (like FFmpeg) silently ignores an unknown option, and x264/x265 only log a
  warning for a bad ``x264-params`` entry (and may still apply a garbled value: ``keyint=abc`` becomes
  ``keyint=1``, an all-intra stream). So (1) after ``avcodec_open2`` PyAV 18 puts the options the codec did
  not consume back into ``codec_context.options``: any leftover raises; (2) FFmpeg's log is captured
  while the codec opens and any "Error parsing option" / "Unknown option" / "Invalid value" raises;
  (3) the option string the encoder writes into its SEI is parsed and must show the CRF, and every
  numeric ``*-params`` value (keyint, bframes, ...) that it lists, with the value we asked for.
  All of these raise :class:`dnervcodec.errors.ConfigError`.

Times: ``encode_s`` is RGB -> YUV conversion + encoding + muxing; ``decode_s`` is demuxing + decoding +
YUV -> RGB conversion into a numpy array, both wall clock, as a user of either codec would see them.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import av
import av.logging
import numpy as np
import torch
from av.video.reformatter import Interpolation

from dnervcodec.errors import ConfigError, InputError
from dnervcodec.metrics import bpp, ms_ssim, psnr
from dnervcodec.rate import as_rate

CODECS = {"libx264": ("h264", "x264"), "libx265": ("hevc", "x265")}  # encoder -> (raw format/decoder, short)
PIX_FMTS = {"yuv420p": "420", "yuv444p": "444"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")

# Colour handling (see the module docstring). FFmpeg enum values: 1 = BT.709 for primaries, transfer and
# matrix; color_range 1 = MPEG/limited ("tv").
COLORSPACE = "ITU709"
COLOR_RANGE = "MPEG"
AVCOL_BT709 = 1
AVCOL_RANGE_MPEG = 1
ENCODE_SWS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP
DECODE_SWS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT

# Messages the libx264 / libx265 wrappers log (as warnings, not errors) for a bad *-params entry.
_BAD_OPTION_LOG = re.compile(r"error parsing option|unknown option|invalid value|bad (name|value)", re.I)
_SEI_OPTIONS = re.compile(rb" - options: ([\x20-\x7e]+)")
_SEI_MARKERS = (b"x264 - core", b"x265 (build")


@dataclass(frozen=True)
class BaselineConfig:
    """One anchor configuration. ``name`` is e.g. 'x265-medium-444' and :meth:`from_name` parses it back."""

    codec: str = "libx265"  # "libx264" | "libx265"
    preset: str = "medium"
    pix_fmt: str = "yuv420p"  # "yuv420p" (what ships) | "yuv444p" (the fair anchor for RGB content)
    keyint: int | None = None  # None: the encoder's default (250), one GOP for clips of <= 250 frames
    threads: int = 1
    strip_info_sei: bool = True
    # Extra encoder parameters, passed through x264-params / x265-params as key=value, and extra top-level
    # AVOptions of the libx264/libx265 wrapper (e.g. ("tune", "psnr")). Both are verified.
    params: tuple[tuple[str, str], ...] = field(default=())
    options: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise ConfigError(f"unknown baseline codec '{self.codec}': choose one of {', '.join(CODECS)}")
        if self.pix_fmt not in PIX_FMTS:
            raise ConfigError(f"unknown pixel format '{self.pix_fmt}': choose one of {', '.join(PIX_FMTS)}")
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset '{self.preset}': choose one of {', '.join(PRESETS)}")
        if self.keyint is not None and self.keyint < 1:
            raise ConfigError("keyint must be >= 1")
        if self.threads < 1:
            raise ConfigError("threads must be >= 1")
        reserved = {"preset", "crf", "x264-params", "x265-params"} & {k for k, _ in self.options}
        if reserved:
            raise ConfigError(f"set {', '.join(sorted(reserved))} through their own fields, not options")

    @property
    def name(self) -> str:
        base = f"{CODECS[self.codec][1]}-{self.preset}-{PIX_FMTS[self.pix_fmt]}"
        if self.keyint is not None:
            base += f"-k{self.keyint}"
        if not self.strip_info_sei:
            base += "-sei"
        return base

    @property
    def decoder(self) -> str:
        return CODECS[self.codec][0]

    @classmethod
    def from_name(cls, name: str, **overrides) -> "BaselineConfig":
        """'x265-veryslow-444' -> BaselineConfig('libx265', 'veryslow', 'yuv444p')."""
        parts = name.lower().split("-")
        short = {v[1]: k for k, v in CODECS.items()}
        fmts = {v: k for k, v in PIX_FMTS.items()}
        if len(parts) != 3 or parts[0] not in short or parts[2] not in fmts:
            raise ConfigError(
                f"baseline name '{name}' is not CODEC-PRESET-CHROMA, e.g. x264-medium-420 or x265-veryslow-444"
            )
        return cls(codec=short[parts[0]], preset=parts[1], pix_fmt=fmts[parts[2]], **overrides)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["params"] = [list(p) for p in self.params]
        d["options"] = [list(p) for p in self.options]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BaselineConfig":
        d = dict(d)
        d["params"] = tuple(tuple(p) for p in d.get("params", ()))
        d["options"] = tuple(tuple(p) for p in d.get("options", ()))
        return cls(**d)

    def encoder_params(self) -> dict[str, str]:
        """The key=value pairs we pass through x264-params / x265-params."""
        p: dict[str, str] = {}
        if self.keyint is not None:
            p["keyint"] = str(self.keyint)
        if self.codec == "libx265":
            # x265 prints its own banner and warnings straight to stderr; the wrapper's option errors go
            # through FFmpeg's log, which we capture. pools/frame-threads pin its thread count.
            p["log-level"] = "error"
            p["pools"] = str(self.threads)
            p["frame-threads"] = str(self.threads)
        p.update(dict(self.params))
        return p


# ---------------------------------------------------------------- option verification


def parse_info_sei(data: bytes) -> dict[str, str] | None:
    """The option string x264/x265 write into their info SEI, as {name: value} (names with '-', not '_').

    x265 writes flags as 'name' / 'no-name'; those become '1' / '0'. Returns None without such an SEI.
    """
    m = _SEI_OPTIONS.search(data)
    if m is None:
        return None
    out: dict[str, str] = {}
    for token in m.group(1).decode("ascii").split():
        if "=" in token:
            key, value = token.split("=", 1)
        elif token.startswith("no-"):
            key, value = token[3:], "0"
        else:
            key, value = token, "1"
        out[key.replace("_", "-")] = value
    return out


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _check_sei(options: dict[str, str] | None, crf: float, params: dict[str, str], codec: str) -> None:
    if options is None:
        raise ConfigError(f"{codec} wrote no option SEI, so the options cannot be verified")
    wanted = {"crf": str(crf), **{k.replace("_", "-"): v for k, v in params.items()}}
    for key, value in wanted.items():
        if key not in options:
            continue  # not listed by the encoder (e.g. x264's SEI has no 'log-level'); the log check covers it
        want, got = _as_number(value), _as_number(options[key])
        if want is not None and got is not None and abs(want - got) > 1e-6:
            raise ConfigError(f"{codec} did not take {key}={value}: its stream says {key}={options[key]}")


class _FFmpegLog:
    """Capture FFmpeg's log (warnings and worse) of the current thread, restoring the previous level."""

    def __enter__(self) -> list:
        self._level = av.logging.get_level()
        if self._level is None or self._level < av.logging.WARNING:
            av.logging.set_level(av.logging.WARNING)
        self._capture = av.logging.Capture(local=True)
        return self._capture.__enter__()

    def __exit__(self, *exc) -> None:
        self._capture.__exit__(*exc)
        av.logging.set_level(self._level)


# ---------------------------------------------------------------- Annex B


def split_annexb(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every NAL unit in an Annex-B stream, start codes excluded; end excludes the next
    start code's leading zero bytes."""
    starts = [m.end() for m in re.finditer(b"\x00\x00\x01", data)]
    units = []
    for i, s in enumerate(starts):
        e = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        while i + 1 < len(starts) and e > s and data[e - 1] == 0:  # zero_byte of a 4-byte start code
            e -= 1
        units.append((s, e))
    return units


def _rbsp(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _is_info_sei(nal: bytes, decoder: str) -> bool:
    """True for a SEI NAL unit holding only user-data-unregistered messages from x264/x265."""
    if decoder == "h264":
        if not nal or nal[0] & 0x1F != 6:
            return False
        body = _rbsp(nal[1:])
    else:
        if len(nal) < 2 or (nal[0] >> 1) & 0x3F not in (39, 40):
            return False
        body = _rbsp(nal[2:])
    if not any(marker in body for marker in _SEI_MARKERS):
        return False
    pos = 0
    while pos < len(body) and body[pos:] != b"\x80":  # rbsp_trailing_bits
        ptype = psize = 0
        while pos < len(body) and body[pos] == 0xFF:
            ptype, pos = ptype + 255, pos + 1
        if pos >= len(body):
            return False
        ptype, pos = ptype + body[pos], pos + 1
        while pos < len(body) and body[pos] == 0xFF:
            psize, pos = psize + 255, pos + 1
        if pos >= len(body):
            return False
        psize, pos = psize + body[pos], pos + 1
        if ptype != 5 or pos + psize > len(body):
            return False
        pos += psize
    return True


def strip_info_sei(data: bytes, decoder: str) -> tuple[bytes, int]:
    """Remove the encoder's informational SEI NAL unit(s) (with their start codes); returns (data, removed)."""
    out = bytearray()
    prev = 0
    removed = 0
    for s, e in split_annexb(data):
        head = s - 3
        while head > prev and data[head - 1] == 0:
            head -= 1
        if _is_info_sei(data[s:e], decoder):
            out += data[prev:head]
            removed += e - head
            prev = e
    out += data[prev:]
    assert len(out) + removed == len(data)
    return bytes(out), removed


# ---------------------------------------------------------------- encode / decode


@dataclass(frozen=True)
class Encoded:
    data: bytes  # the Annex-B stream that is counted and decoded
    info_sei_bytes: int  # bytes of the encoder's info SEI removed from it (0 when kept)
    encoder_options: dict[str, str]  # the option string the encoder wrote into its SEI
    encode_s: float


def _check_frames(frames: np.ndarray, cfg: BaselineConfig) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ConfigError("frames must be a uint8 array [T, H, W, 3] (RGB)")
    if cfg.pix_fmt == "yuv420p" and (frames.shape[1] % 2 or frames.shape[2] % 2):
        raise ConfigError(f"{cfg.name}: yuv420p needs an even width and height, got {frames.shape[1]}x{frames.shape[2]}")


def encode_stream(frames: np.ndarray, fps: float, cfg: BaselineConfig, crf: float) -> Encoded:
    """Encode uint8 RGB frames [T,H,W,3]; verify every option; return the stream and what we learned."""
    _check_frames(frames, cfg)
    if not 0 <= crf <= 51:
        raise ConfigError(f"crf {crf} is outside 0..51")
    crf_text = f"{crf:g}"
    t0 = time.perf_counter()
    params = cfg.encoder_params()
    options = {"preset": cfg.preset, "crf": crf_text, **dict(cfg.options)}
    if params:
        options[f"{CODECS[cfg.codec][1]}-params"] = ":".join(f"{k}={v}" for k, v in params.items())
    rate = as_rate(fps) if fps > 0 else Fraction(25)  # the exact rate, also from a float (29.97... -> 30000/1001)
    buf = io.BytesIO()
    with av.open(buf, "w", format=cfg.decoder) as out:
        stream = out.add_stream(cfg.codec, rate=rate)
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = frames.shape[2], frames.shape[1], cfg.pix_fmt
        ctx.thread_count = cfg.threads
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = AVCOL_BT709
        ctx.color_range = AVCOL_RANGE_MPEG
        ctx.options = dict(options)
        with _FFmpegLog() as logs:
            try:
                ctx.open()
            except av.error.FFmpegError as e:
                detail = "; ".join(m.strip() for _, _, m in logs) or str(e)
                raise ConfigError(f"{cfg.name}: the encoder refused its options {options}: {detail}") from None
        unused = dict(ctx.options)
        if unused:
            raise ConfigError(f"{cfg.name}: {cfg.codec} did not take option(s) {unused} (misspelled or unknown)")
        bad = [m.strip() for _, _, m in logs if _BAD_OPTION_LOG.search(m)]
        if bad:
            raise ConfigError(f"{cfg.name}: {cfg.codec} rejected encoder parameter(s): {'; '.join(bad)}")
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            yuv = vf.reformat(
                format=cfg.pix_fmt,
                src_colorspace=COLORSPACE,
                dst_colorspace=COLORSPACE,
                src_color_range="JPEG",
                dst_color_range=COLOR_RANGE,
                interpolation=ENCODE_SWS,
            )
            yuv.pts = i
            out.mux(stream.encode(yuv))
        out.mux(stream.encode(None))
    data = buf.getvalue()
    sei = parse_info_sei(data)
    _check_sei(sei, crf, params, cfg.codec)
    removed = 0
    if cfg.strip_info_sei:
        data, removed = strip_info_sei(data, cfg.decoder)
    return Encoded(data, removed, sei or {}, time.perf_counter() - t0)


def encode_baseline(frames: np.ndarray, fps: float, cfg: BaselineConfig, crf: float) -> bytes:
    """The bytes of the stream (counted for bpp and decodable by :func:`decode_baseline`)."""
    return encode_stream(frames, fps, cfg, crf).data


def _open_stream(data: bytes, decoder: str, threads: int):
    try:
        container = av.open(io.BytesIO(data), "r", format=decoder)
    except av.error.FFmpegError as e:
        raise InputError(f"not a readable {decoder} stream ({e})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"no video in this {decoder} stream")
    stream = container.streams.video[0]
    stream.codec_context.thread_count = threads
    return container, stream


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    if frame.colorspace != AVCOL_BT709 or frame.color_range != AVCOL_RANGE_MPEG:
        raise InputError(
            f"stream is tagged colorspace={frame.colorspace} range={frame.color_range}, "
            f"expected BT.709 ({AVCOL_BT709}) limited range ({AVCOL_RANGE_MPEG})"
        )
    return frame.reformat(
        format="rgb24",
        src_colorspace=COLORSPACE,
        dst_colorspace=COLORSPACE,
        src_color_range=COLOR_RANGE,
        dst_color_range="JPEG",
        interpolation=DECODE_SWS,
    ).to_ndarray()


def decode_baseline(data: bytes, cfg: BaselineConfig | str, threads: int | None = None) -> np.ndarray:
    """Decode a stream from :func:`encode_baseline` to uint8 RGB frames [T,H,W,3] (same matrix and range)."""
    decoder = cfg.decoder if isinstance(cfg, BaselineConfig) else _decoder_name(cfg)
    threads = threads if threads is not None else (cfg.threads if isinstance(cfg, BaselineConfig) else 1)
    container, stream = _open_stream(data, decoder, threads)
    expected = cfg.pix_fmt if isinstance(cfg, BaselineConfig) else None
    frames = []
    with container:
        for frame in container.decode(stream):
            if expected is not None and frame.format.name != expected:
                raise InputError(f"decoded {frame.format.name} frames, expected {expected}")
            frames.append(_to_rgb(frame))
    if not frames:
        raise InputError(f"the {decoder} stream holds no frames")
    return np.stack(frames)


def _decoder_name(codec: str) -> str:
    if codec in CODECS:
        return CODECS[codec][0]
    if codec in ("h264", "hevc"):
        return codec
    raise ConfigError(f"unknown codec '{codec}': use libx264, libx265, h264 or hevc")


def decode_timing(
    bitstream_bytes: bytes, codec: str | BaselineConfig, threads: int = 1, repeats: int = 3
) -> dict:
    """Decode speed of a stored stream, best of `repeats` runs (all from memory, nothing written).

    Returns frames, decode_fps (demux + decode to YUV), decode_rgb_fps (plus conversion to an RGB numpy
    array, what a user of our codec gets), first_frame_s (open the bytes -> first RGB frame in hand) and the
    matching *_s totals.
    """
    decoder = codec.decoder if isinstance(codec, BaselineConfig) else _decoder_name(codec)
    best: dict | None = None
    for _ in range(max(1, repeats)):
        # pass 1: to YUV only
        t0 = time.perf_counter()
        container, stream = _open_stream(bitstream_bytes, decoder, threads)
        with container:
            n = sum(1 for _ in container.decode(stream))
        yuv_s = time.perf_counter() - t0
        # pass 2: to RGB, timing the first frame
        t0 = time.perf_counter()
        first = None
        container, stream = _open_stream(bitstream_bytes, decoder, threads)
        with container:
            for frame in container.decode(stream):
                _to_rgb(frame)
                if first is None:
                    first = time.perf_counter() - t0
        rgb_s = time.perf_counter() - t0
        if n == 0:
            raise InputError(f"the {decoder} stream holds no frames")
        run = {
            "frames": n,
            "threads": threads,
            "decode_s": yuv_s,
            "decode_fps": n / yuv_s,
            "decode_rgb_s": rgb_s,
            "decode_rgb_fps": n / rgb_s,
            "first_frame_s": first,
        }
        if best is None:
            best = run
        else:
            best = {k: (min(best[k], v) if k.endswith("_s") else max(best[k], v)) for k, v in run.items()}
    assert best is not None
    return best


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run a block with `n` torch threads (None: leave as is), restoring the previous count."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run_point(
    frames: np.ndarray, fps: float, cfg: BaselineConfig, crf: float, metric_threads: int | None = 1,
    reference: np.ndarray | None = None,
) -> dict:
    """Encode at one CRF, decode, and measure. Keys follow CompressAI's results schema where one exists.

    Quality is measured against `reference` when given (the clean clip of a noisy-source benchmark), else
    against the encoded frames. The metrics (not timed) run with `metric_threads` torch threads: on a busy
    2-core machine MS-SSIM with one thread is about 3x faster than with two that fight other jobs for the cores.
    """
    enc = encode_stream(frames, fps, cfg, crf)
    t0 = time.perf_counter()
    decoded = decode_baseline(enc.data, cfg)
    decode_s = time.perf_counter() - t0
    if decoded.shape != frames.shape:
        raise InputError(f"{cfg.name}: decoded {decoded.shape}, expected {frames.shape}")
    t, h, w = frames.shape[:3]
    ref = frames if reference is None else reference
    with torch_threads(metric_threads):
        quality = {"psnr-rgb": psnr(ref, decoded), "ms-ssim-rgb": ms_ssim(ref, decoded)}
    return {
        "crf": crf,
        "bpp": bpp(len(enc.data), t, h, w),
        **quality,
        "encode_s": enc.encode_s,
        "decode_s": decode_s,
        "bytes": len(enc.data),
        "info_sei_bytes": enc.info_sei_bytes,
    }
