"""Tiny synthetic clips made by the tests: moving shapes on a gradient, so that fits have real motion."""

from __future__ import annotations

import numpy as np
import pytest

from dnervcodec.progress import Progress


def moving_shapes(num_frames: int = 8, height: int = 32, width: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 [T,H,W,3]: a colour gradient with a square and a disc moving across it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 7.0)], -1) * 180
    colours = rng.uniform(60, 255, size=(2, 3))
    frames = []
    for t in range(num_frames):
        f = base.copy()
        x0, y0 = (4 + 3 * t) % (width - 10), (2 + t) % (height - 10)
        f[y0 : y0 + 8, x0 : x0 + 8] = colours[0]
        cy, cx = height / 2 + 6 * np.sin(t / 3), width / 2 + 10 * np.cos(t / 3)
        f[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] = colours[1]
        frames.append(f)
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)


@pytest.fixture
def clip() -> np.ndarray:
    return moving_shapes()


class InterruptAfter(Progress):
    """A silent progress line that presses Ctrl-C after `n` steps, as a user would in the middle of a run;
    with `once`, only at that step (a segmented encode counts every segment's steps on one line)."""

    def __init__(self, n: int, once: bool = False) -> None:
        super().__init__(enabled=False)
        self.left, self.once = n, once

    def update(self, n: int = 1, **postfix: object) -> None:
        self.left -= n
        if self.left < 0 and not (self.once and self.left + n < 0):
            raise KeyboardInterrupt


# A clip in 4 segments of 2 frames, fitted long enough (40 steps a segment) that a test can kill a worker
# in the middle of a segment; checkpoints every 60 ms. The runner tests compare their files with this one.
SEGMENTED_ARGS = ["--segment-frames", "2", "--epochs", "20", "--size", "20k", "--device", "cpu", "--quiet",
                  "--checkpoint-minutes", "0.001"]


def without_timings(data: bytes) -> bytes:
    """The file without its stage-timing text: what must be identical whichever runner wrote it."""
    from dnervcodec.bitstream import read_container, write_container

    container = read_container(data)
    container.ancillary.pop("timings", None)
    return write_container(container)


@pytest.fixture(scope="session")
def segmented_reference(tmp_path_factory) -> tuple:
    """(clip file, the file `dnerv encode --workers 1` writes for it with SEGMENTED_ARGS)."""
    from dnervcodec.cli import main
    from dnervcodec.video import write_video

    folder = tmp_path_factory.mktemp("segmented")
    clip = write_video(folder / "clip.mkv", moving_shapes(8, 32, 64))
    out = folder / "reference.dnerv"
    assert main(["encode", str(clip), "-o", str(out), "--workers", "1", *SEGMENTED_ARGS]) == 0
    return clip, out.read_bytes()
