"""Portable decoding: the committed fixture of every format version decodes to its committed checksums.

A file must decode to the same frames on every machine. These fixtures were written once (formats 1 and 2
by dnervcodec 0.1.0 and 0.2.0, 3.x and 4.0 by tools/make_fixture.py); their checksums were taken where they
were written, the frames with 2 torch threads (tools/make_fixture.checksums pins that count, so
OMP_NUM_THREADS does not matter). A failure on another machine, or after an upgrade of torch, numpy or
constriction, means files written before no longer decode to what their encoder saw: docs/bitstream.md,
"Portability", says which computations must be bit-exact and which ones rely on float math. The tensor
checksum of the 4.0 fixture depends on integer arithmetic only (tests/test_portable.py checks its tables).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dnervcodec.bitstream import FORMAT_VERSION, file_version
from tools.make_fixture import checksums

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "checksums.json").read_text())


def test_every_format_version_has_a_fixture_with_checksums() -> None:
    files = sorted(p.name for p in DATA.glob("*.dnerv"))
    assert files == sorted(EXPECTED)
    versions = set()
    for name in files:
        major, minor = (int(v) for v in re.fullmatch(r"format-(\d+)\.(\d+)\.dnerv", name).groups())
        assert file_version((DATA / name).read_bytes()) == (major, minor), name
        versions.add((major, minor))
    assert FORMAT_VERSION in versions, f"no fixture of the current format: python -m tools.make_fixture " \
                                       f"tests/data/format-{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}.dnerv"
    assert {major for major, _ in versions} == set(range(1, FORMAT_VERSION[0] + 1))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_decodes_to_its_committed_checksums(name: str) -> None:
    got, want = checksums(DATA / name), EXPECTED[name]
    assert got["shape"] == want["shape"]
    assert got["tensors_sha256"] == want["tensors_sha256"], \
        f"{name}: entropy decoding or dequantization gives other values here (coded tensors differ)"
    assert got["frames_sha256"] == want["frames_sha256"], \
        f"{name}: same tensors, other frames: the decoder network's float math differs on this machine"

