"""Write the fixture of the current format (a tiny deterministic encode) and print its checksums.

    python -m tools.make_fixture tests/data/format-X.Y.dnerv

Run it once when the format version changes; commit the file and add the printed checksums to
tests/data/checksums.json: tests/test_fixtures.py then holds every later reader, on every machine, to them.

The clip is tests.conftest.moving_shapes, 9 frames of 32x64 at 29.97 fps (30000/1001, a fractional rate),
in two segments so that one file holds what both pipelines write: frames 0-5 fitted and min/max-quantized
to 8 bits at 20k values (per-channel pinned Gaussians, per-channel Laplaces, raw values), frames 6-8
with rate-distortion fine-tuning at 8k values (learned steps; histograms and a shared Gaussian).

Reproducible: the fits run on one CPU thread (torch's float sums depend on the thread count) from seed 0,
and the file keeps no ancillary chunk (the encoder's wall-clock timings differ on every run), so running it
again on the same machine and library versions writes the same bytes (format-4.0.dnerv: run twice, the
same "file_sha256"). Another machine may fit other weights, which is why the fixture is committed rather
than regenerated.
"""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from dnervcodec.bitstream import Container, decode_segment, read_container, write_container
from dnervcodec.codec import EncodeConfig, decode, encode_video
from dnervcodec.fit import FitConfig
from dnervcodec.video import Video
from tests.conftest import moving_shapes

FIT_THREADS = 1  # the fits, on one thread: the same bytes on every run
FRAME_THREADS = 2  # the decoder network's frames: the committed checksums were taken with 2 threads
FPS = 30000 / 1001
# (first frame, frames, encode options) of each segment
SEGMENTS = [(0, 6, dict(size="20k")), (6, 3, dict(size="8k", rd_epochs=5))]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with n intra-op threads: convolutions sum in another order with another count."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def checksums(path: Path) -> dict:
    """What a file must decode to on any machine: sha256 of its tensors (entropy decoding and dequantization,
    in file order) and of the uint8 frames the decoder network makes of them on the CPU, with their shape.

    Two digests, so a mismatch tells which half differs: the coded tensors, or the network's float math.
    The frames are computed on FRAME_THREADS threads whatever the environment asks (OMP_NUM_THREADS=1 moves
    a few pixels of the 3.x fixtures by one level).
    """
    data = path.read_bytes()
    h = hashlib.sha256()
    for segment in read_container(data).segments:
        for name, array in decode_segment(segment).items():
            h.update(name.encode() + b"\0" + np.ascontiguousarray(array, np.float32).tobytes())
    with torch_threads(FRAME_THREADS):
        frames, _ = decode(data, device="cpu")
    return {"shape": list(frames.shape), "tensors_sha256": h.hexdigest(),
            "frames_sha256": hashlib.sha256(frames.tobytes()).hexdigest()}


def fixture_bytes() -> bytes:
    """The fixture: each segment encoded on its own, then put in one file in frame order."""
    total = sum(n for _, n, _ in SEGMENTS)
    clip = moving_shapes(total, 32, 64)
    header, segments = None, []
    for first, n, options in SEGMENTS:
        cfg = EncodeConfig(fit=FitConfig(epochs=20, seed=0), device="cpu", **options)
        with torch_threads(FIT_THREADS):
            report = encode_video(Video(clip[first : first + n], FPS, (32, 64)), cfg, progress=False)
        part = read_container(report.data)
        (segment,) = part.segments
        segment.meta["first_frame"] = first
        segments.append(segment)
        header = header or part.header
    header["video"]["frames"] = total
    header["coding"] = {"segments": [dict(first_frame=f, frames=n, **o) for f, n, o in SEGMENTS]}
    return write_container(Container(header=header, segments=segments))


def main(out: str) -> None:
    data = fixture_bytes()
    Path(out).write_bytes(data)
    print(json.dumps({Path(out).name: checksums(Path(out))}, indent=1))
    print(f"file_sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main(sys.argv[1])
