"""Small pieces of wording shared by messages, so that every one says "1 frame" and "42 s" the same way."""

from __future__ import annotations


def plural(n: int, noun: str) -> str:
    """'1 frame', '8 frames', '0 frames'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def duration(seconds: float) -> str:
    """'42 s' under a minute, '3.5 min' under two hours, '2.4 h' beyond: never '0.0 min'."""
    if seconds < 59.5:
        return f"{seconds:.0f} s" if seconds >= 9.5 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
