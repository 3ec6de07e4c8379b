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
from typing import Iterator, Protocol, Sequence

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

    def add_total(self, n: int) -> None:
        """Grow (or shrink) the open stage's total, when the steps it covers turn out to be more (or fewer)."""
        self.total += n
        if self._bar is not None:
            self._bar.total = self.total
            self._bar.refresh()

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


# ---------------------------------------------------------------- one line for many segments

Event = tuple  # (segment, "stage", name, total, initial) | (segment, "update", n, postfix) | (segment, "write", text)


class EventSink(Protocol):
    """Where a segment's progress events go: a SegmentsProgress, or a queue to one in another process."""

    def put(self, event: Event) -> None: ...


class ForwardProgress(Progress):
    """A segment job's progress as events for the one line that covers every segment, which may be drawn in
    another process: the job's stages call it as they would a display of their own. Steps are sent at
    most every `every` seconds (and with every new loss/PSNR), so a queue between processes stays quiet."""

    def __init__(self, sink: EventSink, segment: int, every: float = 0.5) -> None:
        super().__init__(enabled=False)
        self.sink, self.segment, self.every = sink, segment, every
        self._pending, self._sent = 0, 0.0

    def stage(self, name: str, total: int, initial: int = 0) -> "Progress":
        super().stage(name, total, initial)
        self.sink.put((self.segment, "stage", name, total, initial))
        return self

    def update(self, n: int = 1, **postfix: object) -> None:
        super().update(n, **postfix)
        self._pending += n
        now = time.perf_counter()
        if postfix or now - self._sent >= self.every:
            self.sink.put((self.segment, "update", self._pending, dict(postfix)))
            self._pending, self._sent = 0, now

    def end_stage(self) -> None:
        if self._pending:
            self.sink.put((self.segment, "update", self._pending, {}))
            self._pending = 0
        super().end_stage()

    def write(self, message: str) -> None:
        self.sink.put((self.segment, "write", message))


class SegmentsProgress:
    """One stage of `display` for all segments of an encode: the sum of their planned steps (each stage's
    own total replaces its plan when it starts; a resumed stage counts the steps it had done), and the
    numbers of the segment that reported last."""

    def __init__(self, display: Progress, name: str, planned: dict[int, dict[str, int]]) -> None:
        self.display, self.planned = display, planned
        self.count, self.finished = len(planned), 0
        display.stage(name, sum(sum(stages.values()) for stages in planned.values()))
        self.current: dict[int, str] = {}  # each segment's running stage
        self.counted: dict[tuple[int, str], list[int]] = {}  # (segment, stage) -> [its total, its steps shown]
        self.shown: dict[str, object] = {"done": f"0/{self.count}"}

    def put(self, event: Event) -> None:
        segment, kind, *rest = event
        if kind == "stage":
            # A stage seen before is a job run again (a retried task resuming): its steps are counted anew.
            name, total, initial = rest
            before = self.counted.get((segment, name), [self.planned.get(segment, {}).pop(name, 0), 0])
            self.counted[(segment, name)] = [total, initial]
            self.current[segment] = name
            self.display.add_total(total - before[0])
            if initial != before[1]:
                self.display.update(initial - before[1])
        elif kind == "update":
            n, postfix = rest
            counted = self.counted.get((segment, self.current.get(segment, "")))
            if counted is not None:
                counted[1] += n
            if not postfix:
                self.display.update(n)
                return
            where = f"{segment} {self.current.get(segment, '')}".strip()
            self.shown = {"done": self.shown["done"], "segment": where, **postfix}
            self.display.update(n, **self.shown)
        elif kind == "write":
            self.display.write(f"segment {segment}: {rest[0]}")

    def segment_done(self, segment: int) -> None:
        """A segment is coded: steps it planned but did not run (stages it skipped) leave the total."""
        self.finished += 1
        left = sum(self.planned.pop(segment, {}).values())
        if left:
            self.display.add_total(-left)
        self.shown["done"] = f"{self.finished}/{self.count}"
        self.display.update(0, **self.shown)

    def close(self) -> None:
        self.display.end_stage()
