"""The one rule for a frame range (--start, --frames), used by reading and by decoding alike.

The range must lie inside the clip: asking for more frames than there are is an error that names the
clip's length and what would fit, never a silent shorter clip (a benchmark or a script would measure
the wrong thing without knowing it).
"""

from __future__ import annotations

from .errors import ConfigError
from .wording import plural


def _frames(first: int, last: int) -> str:
    return f"frame {first}" if first == last else f"frames {first} to {last}"


def clip_length(total: int) -> str:
    """'8 frames (0 to 7)' or '1 frame (0)'."""
    return f"{plural(total, 'frame')} ({'0' if total == 1 else f'0 to {total - 1}'})"


def check_range_options(start: int, count: int | None) -> None:
    """The part of the rule that needs no clip: start >= 0 and at least one frame."""
    if start < 0 or (count is not None and count < 1):
        raise ConfigError(f"a frame range needs --start >= 0 and --frames >= 1, got --start {start}"
                          + (f" --frames {count}" if count is not None else ""))


def frame_range(start: int, count: int | None, total: int) -> tuple[int, int]:
    """(start, stop) of `count` frames from `start` (None: to the end) in a clip of `total` frames;
    a ConfigError naming the clip's length when they do not all exist."""
    check_range_options(start, count)
    if start >= total:
        raise ConfigError(f"--start {start} is past the end: the clip has {clip_length(total)}")
    stop = total if count is None else start + count
    if stop > total:
        fit = total - start
        raise ConfigError(f"--start {start} --frames {count} asks for {_frames(start, stop - 1)}, but the clip has "
                          f"{clip_length(total)}: use --frames {fit} or fewer, or leave --frames out to go to the end")
    return start, stop
