"""Exact frame rates in the .dnerv header: written as a rational, read back from old float-only files too."""

from __future__ import annotations

import copy
from fractions import Fraction
from pathlib import Path

import pytest

from dnervcodec.bitstream import read_container, write_container
from dnervcodec.cli import main
from dnervcodec.codec import parse
from dnervcodec.errors import BitstreamError, ConfigError
from dnervcodec.rate import as_rate, header_fields, header_rate
from dnervcodec.video import read_video

DATA = Path(__file__).parent / "data"
OLD = DATA / "format-3.0.dnerv"  # fps 29.97002997002997 only, as dnervcodec 0.3.0 wrote it
NEW = DATA / "format-3.1.dnerv"  # fps and fps_rational [30000, 1001]


def test_header_fields_are_the_float_and_the_rational():
    assert header_fields(Fraction(30000, 1001)) == {"fps": 30000 / 1001, "fps_rational": [30000, 1001]}
    assert header_rate(header_fields(Fraction(24000, 1001))) == Fraction(24000, 1001)
    with pytest.raises(ConfigError, match="outside"):
        header_fields(Fraction(1200))


@pytest.mark.parametrize("rate", [Fraction(30000, 1001), Fraction(24000, 1001), Fraction(60000, 1001),
                                  Fraction(120000, 1001), Fraction(25), Fraction(2997, 100), Fraction(1, 3)])
def test_old_float_headers_give_the_rational_back(rate):
    assert as_rate(float(rate)) == rate and header_rate({"fps": float(rate)}) == rate


@pytest.mark.parametrize("path", [OLD, NEW])
@pytest.mark.parametrize("suffix", [".y4m", ".mkv", ".mp4"])
def test_decode_writes_the_exact_rate_for_old_and_new_files(tmp_path, path, suffix, capsys):
    out = tmp_path / f"out{suffix}"
    assert main(["decode", str(path), "-o", str(out)]) == 0, capsys.readouterr().err
    assert read_video(out).rate == Fraction(30000, 1001)
    if suffix == ".y4m":
        assert b" F30000:1001 " in out.read_bytes()[:100]


def test_the_new_key_is_optional_and_checked():
    """Older readers ignore fps_rational (they read fps); this one checks it against fps."""
    base = read_container(NEW.read_bytes())
    assert base.header["video"]["fps_rational"] == [30000, 1001]
    assert "fps_rational" not in read_container(OLD.read_bytes()).header["video"]
    bad = {
        "not a list": "30000/1001", "one term": [30000], "zero": [0, 1], "negative": [30000, -1001],
        "float": [30000.0, 1001], "bool": [True, 1], "huge": [2**31, 1], "disagrees": [25, 1],
    }
    for name, value in bad.items():
        c = copy.deepcopy(base)
        c.header["video"]["fps_rational"] = value
        with pytest.raises(BitstreamError, match="fps"):
            parse(write_container(c))
            pytest.fail(f"accepted: {name}")
    c = copy.deepcopy(base)
    c.header["video"]["fps"] = True
    with pytest.raises(BitstreamError, match="fps"):
        parse(write_container(c))


def test_info_shows_the_exact_rate(capsys):
    assert main(["info", str(NEW)]) == 0
    assert "at 29.97 fps = 30000/1001 (" in capsys.readouterr().out
    assert main(["info", str(OLD)]) == 0
    assert "at 29.97 fps (" in capsys.readouterr().out  # a float-only file shows what it stores
