"""The command line's argparse pieces: value parsers checked when the command line is read, before any
input is opened; a parser whose errors are one line; a help formatter that shows every default.

Each `*_arg` function is an argparse `type=`: it turns the text into a value or raises
ArgumentTypeError with the allowed range, so `--bits 17` fails in milliseconds instead of after a fit.
Nothing here imports torch or PyAV: a wrong option must fail fast even on a cold start.
`parse_budget`, `parse_resolution` and `parse_duration` live here for the same reason; the library re-exports
the first two.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import Callable, NoReturn

from .cluster import AUTO, probe
from .errors import ConfigError

MAX_BUDGET = 10**9
MAX_PIXELS_PER_FRAME = 8192 * 8192
MAX_DIFF_STRIDE = 64  # the decoder config's limit on any stride
DIFF_STRIDE_STAGES = 3  # the diff encoder has at most this many downsampling stages ...
MAX_STAGE_STRIDE = 5  # ... each of at most this stride


def parse_budget(text: str) -> int:
    """'0.35M' -> 350000, '85k' -> 85000, '120000' -> 120000 stored values."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmM]?)\s*", text or "")
    if not m:
        raise ConfigError(f"budget '{text}' is not a number of stored values like 85k, 0.35M or 120000")
    value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if not 1000 <= value <= MAX_BUDGET:
        raise ConfigError(f"budget '{text}' is out of range (1k to 1000M stored values)")
    return int(round(value))


def parse_resolution(text: str) -> tuple[int, int]:
    """'160x320' -> (160, 320): height first, as the NeRV papers write sizes."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"resolution '{text}' is not HEIGHTxWIDTH, e.g. 160x320") from None
    if h <= 0 or w <= 0 or h * w > MAX_PIXELS_PER_FRAME:
        raise ConfigError(f"resolution '{text}' is out of range: both sides at least 1 and at most "
                          f"{MAX_PIXELS_PER_FRAME} pixels in all (8192x8192)")
    return h, w


MAX_DURATION = 7 * 24 * 3600  # --time: a week; longer is surely a typo
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION = re.compile(rf"(?:({_NUMBER})h)?(?:({_NUMBER})m)?(?:({_NUMBER})s)?")


def parse_duration(text: str) -> float:
    """'90s', '5m', '1h30m', '1.5h' or plain seconds ('300') -> seconds, in (0 s, 7 days]."""
    t = (text or "").strip().lower()
    if re.fullmatch(_NUMBER, t):
        seconds = float(t)
    else:
        m = _DURATION.fullmatch(t)
        if not t or m is None:
            raise ConfigError(f"'{text}' is not a duration like 90s, 5m, 1h30m or 1.5h")
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        seconds = h * 3600 + mi * 60 + s
    if not 0 < seconds <= MAX_DURATION:
        raise ConfigError(f"'{text}' is outside (0 s, 7 days]")
    return seconds


def _stride_splits(n: int) -> bool:
    """Whether n is a product of at most DIFF_STRIDE_STAGES factors of 2..5 (what the diff encoder can do)."""
    def fits(m: int, stages: int) -> bool:
        if m == 1:
            return True
        return stages > 0 and any(m % f == 0 and fits(m // f, stages - 1) for f in range(2, MAX_STAGE_STRIDE + 1))

    return n >= 2 and fits(n, DIFF_STRIDE_STAGES)


DIFF_STRIDES = tuple(n for n in range(2, MAX_DIFF_STRIDE + 1) if _stride_splits(n))


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit 2 (the usage is one `--help` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends '(default: X)' to every option that takes a value and has a default; options whose default
    depends on other values (None here) say what it is in their own help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        no_default = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if "%(default)" in text or "default:" in text or no_default:
            return text
        if action.option_strings and action.nargs != 0:
            text += " (default: %(default)s)"
        return text


def _number(text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {'an integer' if kind is int else 'a number'}") from None


def int_arg(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi] (no upper end when hi is None)."""
    def parse(text: str) -> int:
        value = int(_number(text, int))
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is outside {int_range(lo, hi)}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its own messages
    return parse


def float_arg(lo: float, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    """A finite number between lo and hi; each end closed unless marked open (no upper end when hi is None)."""
    def parse(text: str) -> float:
        value = float(_number(text, float))
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        low_ok = value > lo if lo_open else value >= lo
        high_ok = hi is None or (value < hi if hi_open else value <= hi)
        if not low_ok or not high_ok:
            raise argparse.ArgumentTypeError(f"{text} is outside {float_range(lo, hi, lo_open, hi_open)}")
        return value

    parse.__name__ = "number"
    return parse


def int_range(lo: int, hi: int | None) -> str:
    """'2..16' or '>= 0': the allowed range as --help and the errors write it."""
    return f">= {lo}" if hi is None else f"{lo}..{hi}"


def float_range(lo: float, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    """'(0, 255]', '[0, 1)' or '> 0': interval notation, as --help and the errors write it."""
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def _from_config_error(parse: Callable[[str], object], name: str) -> Callable[[str], object]:
    def wrapped(text: str) -> object:
        try:
            return parse(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    wrapped.__name__ = name
    return wrapped


budget_arg = _from_config_error(lambda text: parse_budget(text) and text, "budget")  # checked, kept as written
resolution_arg = _from_config_error(parse_resolution, "resolution")
duration_arg = _from_config_error(parse_duration, "duration")

# --preset: named epoch counts, like x264's presets a speed that scales with the clip (not a wall time).
# Epochs by name. medium is the default: with the width-16 encoders (models.dnerv.ARCHITECTURES) 120 epochs
# take about the CPU time 50 took with the paper's encoders (docs/rd.md, "Fit ablation").
PRESETS = {"fast": 40, "medium": 120, "slow": 240, "paper": 300}
DEFAULT_LR = 3e-3  # peak learning rate: 3e-3 beat 1e-3 by 0.67 dB and 2e-3 by 0.22 dB at 80 epochs (docs/rd.md)
DEFAULT_PRESET = "medium"


def _ray_address(text: str) -> str:
    """'auto', or a Ray head's HOST:PORT that answers now (a few seconds at most): an unreachable cluster
    is refused when the command line is read, not after the input has been read and denoised."""
    if text == AUTO:
        return text
    probe(text)
    return text


ray_arg = _from_config_error(_ray_address, "address")


def diff_stride_arg(text: str) -> int:
    """A diff stride the diff encoder can build: a product of at most three strides of 2..5."""
    value = int(_number(text, int))
    if value not in DIFF_STRIDES:
        near = sorted(DIFF_STRIDES, key=lambda n: (abs(n - value), n))[:3]
        raise argparse.ArgumentTypeError(
            f"{value} is not a product of at most {DIFF_STRIDE_STAGES} strides of 2..{MAX_STAGE_STRIDE}; "
            f"nearest that work: {', '.join(map(str, sorted(near)))}")
    return value


def device_arg(text: str) -> str:
    """auto, cpu, cuda or cuda:N; whether CUDA is present is checked when the device is opened."""
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not auto, cpu, cuda or cuda:N")
    return text


# Decode cost limits per frame (models.cost.DecodeLimits); here so the CLI can show them without loading torch.
DEFAULT_MAX_DECODE_GFLOPS = 20_000.0
DEFAULT_MAX_DECODE_MEMORY = 16 << 30
