"""One progress line for a job of several stages (denoise, fit, prune, code), showing loss and PSNR.

Every long loop (a fit, a denoiser's training) takes ``progress: bool | Progress``. Given a bool it opens and
closes a bar of its own; given a :class:`Progress` it reuses that one line, so `dnerv encode --denoise stbn`
shows the whole chain as a single display whose label names the stage::

    [2/3] fit  45%|████▌     | 2970/6600 [01:10<01:26, loss=0.0021, psnr=26.8]
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator, Sequence

from tqdm import tqdm


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """One line that successive stages relabel and reset. It keeps its own counts (label, done, total,
    postfix), so it can be inspected; tqdm draws it only when enabled."""

    def __init__(self, enabled: bool = True, stages: Sequence[str] = ()) -> None:
        self.enabled = enabled
        self.stages = list(stages)
        self.label, self.done, self.total, self.postfix = "", 0, 0, ""
        self._bar: tqdm | None = None

    def stage(self, name: str, total: int, initial: int = 0) -> "Progress":
        """Start stage `name` of `total` steps (`initial` already done, e.g. after a resume)."""
        self.label = f"[{self.stages.index(name) + 1}/{len(self.stages)}] {name}" if name in self.stages else name
        self.done, self.total, self.postfix = initial, total, ""
        if not self.enabled:
            return self
        if self._bar is None:
            # A log file gets a line every 30 s rather than a redraw every 0.1 s.
            self._bar = tqdm(total=total, initial=initial, desc=self.label, unit="step", dynamic_ncols=True,
                             mininterval=0.5 if sys.stderr.isatty() else 30)
        else:
            self._bar.reset(total=total)
            self._bar.set_description(self.label, refresh=False)
            self._bar.set_postfix_str("", refresh=False)
            if initial:
                self._bar.update(initial)
        return self

    def update(self, n: int = 1, **postfix: object) -> None:
        """Advance by n steps; keyword values (loss=..., psnr=...) replace the numbers shown after the bar."""
        self.done += n
        if postfix:
            self.postfix = ", ".join(f"{k}={_format(v)}" for k, v in postfix.items())
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix_str(self.postfix, refresh=False)
            self._bar.update(n)

    def write(self, message: str) -> None:
        """A line above the bar (or on stderr when there is none), e.g. which layout the sizing chose."""
        if self.enabled:
            tqdm.write(message, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@contextmanager
def progress_stage(progress: "bool | Progress", name: str, total: int, initial: int = 0) -> Iterator[Progress]:
    """This stage on the caller's Progress line, or on a bar of its own (closed at the end) for a bool."""
    if isinstance(progress, Progress):
        yield progress.stage(name, total, initial)
        return
    own = Progress(enabled=bool(progress))
    try:
        yield own.stage(name, total, initial)
    finally:
        own.close()
