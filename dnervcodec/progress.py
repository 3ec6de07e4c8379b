"""One progress line per stage of a job (denoise, fit, prune, qat), showing loss and PSNR.

Every long loop (a fit, a denoiser's training) takes ``progress: bool | Progress``. Given a bool it opens and
closes a display of its own; given a :class:`Progress` it adds its stage to that display, so `dnerv encode
--denoise stbn` shows the whole chain, each stage numbered, each left on its own line where it ended::

    [1/2] denoise stbn: 100%|██████████| 1510/1510 [09:12<00:00,  2.73step/s]
    [2/2] fit:  45%|████▌    | 2970/6600 [01:10<01:26, 42.1step/s, loss=0.0021, psnr=26.8]

Each stage gets a fresh bar, so its rate and time left count only the steps of this run: a stage resumed
at step 2000 of 6600 does not report the 2000 steps as done in no time, nor a negative rate after them.
On a terminal tqdm redraws the line; in a log file (stderr not a terminal) a stage writes a line every
LOG_SECONDS and one when it ends, so a short stage is exactly one line.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

from tqdm import tqdm

LOG_SECONDS = 30.0


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """The display of a job's stages. It keeps the current stage's counts (label, done, total, postfix), so
    it can be inspected; it draws only when enabled."""

    def __init__(self, enabled: bool = True, stages: Sequence[str] = ()) -> None:
        self.enabled = enabled
        self.stages = list(stages)
        self.label, self.done, self.total, self.postfix = "", 0, 0, ""
        self._initial = 0
        self._bar: tqdm | None = None  # on a terminal
        self._started: float | None = None  # in a log: when the open stage started
        self._logged = 0.0

    @property
    def open(self) -> bool:
        """Whether a stage is being shown (and will get its final line)."""
        return self._bar is not None or self._started is not None

    def stage(self, name: str, total: int, initial: int = 0) -> "Progress":
        """Start stage `name` of `total` steps (`initial` already done, e.g. after a resume); ends the open one."""
        self.end_stage()
        self.label = f"[{self.stages.index(name) + 1}/{len(self.stages)}] {name}" if name in self.stages else name
        self.done, self.total, self.postfix, self._initial = initial, total, "", initial
        if not self.enabled:
            return self
        if sys.stderr.isatty():
            self._bar = tqdm(total=total, initial=initial, desc=self.label, unit="step", dynamic_ncols=True,
                             mininterval=0.5, file=sys.stderr)
        else:
            self._started = self._logged = time.perf_counter()
        return self

    def set_total(self, total: int) -> None:
        """Move the open stage's end: a stage whose epochs a time budget re-plans."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int = 1, **postfix: object) -> None:
        """Advance by n steps; keyword values (loss=..., psnr=...) replace the numbers shown after the bar."""
        self.done += n
        if postfix:
            self.postfix = ", ".join(f"{k}={_format(v)}" for k, v in postfix.items())
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix_str(self.postfix, refresh=False)
            self._bar.update(n)
        elif self._started is not None and time.perf_counter() - self._logged >= LOG_SECONDS:
            self._log_line()

    def _log_line(self) -> None:
        now = time.perf_counter()
        line = tqdm.format_meter(self.done, self.total, now - self._started, prefix=self.label, unit="step",
                                 postfix=self.postfix or None, initial=self._initial)
        print(line, file=sys.stderr, flush=True)
        self._logged = now

    def write(self, message: str) -> None:
        """A line above the bar (or on stderr when there is none), e.g. which layout the sizing chose."""
        if self.enabled:
            tqdm.write(message, file=sys.stderr)

    def end_stage(self) -> None:
        """Leave the open stage's line as it ended (100% when it ran to the end)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._started is not None:
            self._log_line()
            self._started = None

    def close(self) -> None:
        self.end_stage()


@contextmanager
def progress_stage(progress: "bool | Progress", name: str, total: int, initial: int = 0) -> Iterator[Progress]:
    """This stage on the caller's Progress (ended when the block ends), or on a display of its own for a bool."""
    display = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    try:
        yield display.stage(name, total, initial)
    finally:
        display.end_stage()
