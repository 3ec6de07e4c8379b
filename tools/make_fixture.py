"""Write the fixture of the current format (a tiny deterministic encode) and print its checksums.

    python -m tools.make_fixture tests/data/format-X.Y.dnerv

Run it once when the format version changes; commit the file and add the printed checksums to
tests/data/checksums.json: tests/test_fixtures.py then holds every later reader, on every machine, to them.
The clip is tests.conftest.moving_shapes at 29.97 fps (30000/1001), so the fixture has a fractional rate.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from dnervcodec.bitstream import decode_segment, read_container
from dnervcodec.codec import EncodeConfig, decode, encode_video
from dnervcodec.fit import FitConfig
from dnervcodec.video import Video
from tests.conftest import moving_shapes


def checksums(path: Path) -> dict:
    """What a file must decode to on any machine: sha256 of its tensors (entropy decoding and dequantization,
    in file order) and of the uint8 frames the decoder network makes of them on the CPU, with their shape.

    Two digests, so a mismatch tells which half differs: the coded tensors, or the network's float math.
    """
    data = path.read_bytes()
    h = hashlib.sha256()
    for segment in read_container(data).segments:
        for name, array in decode_segment(segment).items():
            h.update(name.encode() + b"\0" + np.ascontiguousarray(array, np.float32).tobytes())
    frames, _ = decode(data, device="cpu")
    return {"shape": list(frames.shape), "tensors_sha256": h.hexdigest(),
            "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest()}


def main(out: str) -> None:
    frames = moving_shapes(6, 32, 64)
    cfg = EncodeConfig(size="20k", fit=FitConfig(epochs=20, seed=0), device="cpu")
    report = encode_video(Video(frames, 30000 / 1001, (32, 64)), cfg, progress=False)
    Path(out).write_bytes(report.data)
    print(json.dumps({Path(out).name: checksums(Path(out))}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
