"""Exact frame rates: a Fraction from the source through the .dnerv header to every output.

29.97 fps is 30000/1001, not 30 and not 29.97: a float would drift by a frame every few minutes once written
back, and rounding to an integer re-times the clip. PyAV gives rates as Fractions; the header stores the
rational as `fps_rational: [num, den]` beside the float `fps` that every older reader needs.
"""

from __future__ import annotations

from fractions import Fraction

from .errors import BitstreamError, ConfigError

MAX_FPS = 1000  # a header's rate is in (0, MAX_FPS)
MAX_TERM = 2**31 - 1  # numerator and denominator fit FFmpeg's AVRational (int)
FLOAT_DENOMINATOR = 1_000_000  # old headers' floats: the nearest fraction with a denominator up to this


def as_rate(value: float | Fraction | int) -> Fraction:
    """A frame rate as a Fraction. A float becomes the nearest fraction with a denominator up to a million:
    29.97002997002997 (float(30000/1001), as files before fps_rational stored it) gives back 30000/1001."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(value).limit_denominator(FLOAT_DENOMINATOR)


def header_fields(rate: Fraction) -> dict:
    """The header's frame-rate fields: `fps` (float, read by every version) and the exact `fps_rational`."""
    if not 0 < rate < MAX_FPS or max(rate.numerator, rate.denominator) > MAX_TERM:
        raise ConfigError(f"frame rate {rate} fps is outside what a .dnerv file stores (0 to {MAX_FPS} fps)")
    return {"fps": float(rate), "fps_rational": [rate.numerator, rate.denominator]}


def header_rate(video: dict) -> Fraction:
    """The exact frame rate of a header's `video` object; BitstreamError if it is missing or malformed.

    `fps_rational` wins when present (it must agree with `fps`); files without it give as_rate(fps)."""
    fps = video.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps < MAX_FPS:
        raise BitstreamError("header field 'fps' is missing or out of range")
    if "fps_rational" not in video:
        return as_rate(fps)
    pair = video["fps_rational"]
    if (not isinstance(pair, list) or len(pair) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_TERM for v in pair)):
        raise BitstreamError("header field 'fps_rational' must be [numerator, denominator], integers 1 to 2^31-1")
    rate = Fraction(*pair)
    if not 0 < rate < MAX_FPS or abs(float(rate) - fps) > 1e-9 * fps:
        raise BitstreamError("header fields 'fps' and 'fps_rational' disagree or are out of range")
    return rate
