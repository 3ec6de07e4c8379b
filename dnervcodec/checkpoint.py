"""Checkpoints for long training loops (DNeRV fits, self-supervised denoisers), so an interrupted job resumes.

- Writes are atomic: a crash while saving leaves the previous checkpoint intact.
- A checkpoint carries a key (options + a digest of the input frames); resuming with other settings or other
  frames is refused with a message instead of silently mixing two runs.
- The first Ctrl-C only raises a flag that the loop checks between optimizer steps, so a checkpoint never
  holds a half-applied step; a second Ctrl-C interrupts at once.
Checkpoints are our own files, read with ``torch.load(weights_only=True)`` (tensors and plain containers only).

One mechanism for every loop: :class:`Checkpointer` writes (atomically, with the run's key), restores
(refusing another run's checkpoint and naming what differs) and knows when the next periodic save is due;
:func:`checkpoints_in` finds a run folder's checkpoints and :func:`discard_checkpoints` removes them.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch

from .errors import CheckpointError

CHECKPOINT_NAME = "checkpoint.pt"
DENOISED_NAME = "denoised.pt"  # an encode's cached denoiser output: also work a new run must not overwrite
CHECKPOINT_FILES = (CHECKPOINT_NAME, DENOISED_NAME)
IGNORED_SETTINGS = ("checkpoint_minutes",)  # how often to save does not change what is computed


def frames_digest(frames: np.ndarray) -> str:
    """SHA-1 of the frames: tells whether a checkpoint was written for this very input."""
    return hashlib.sha1(np.ascontiguousarray(frames).data).hexdigest()


def tensors_digest(tensors: list) -> str:
    """SHA-1 of a list of arrays/tensors: which fitted model a fine-tuning run starts from, so a checkpoint
    of another start does not resume."""
    h = hashlib.sha1()
    for t in tensors:
        if t is not None:
            h.update(np.ascontiguousarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t).tobytes())
    return h.hexdigest()


def _flatten(value: object, path: str = "") -> dict[str, object]:
    """{'fit_cfg.epochs': 50, ...}: nested dicts as dotted paths; tuples read as lists (as a round trip may)."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{path}.{k}" if path else str(k)))
        return out
    return {path: list(value) if isinstance(value, tuple) else value}


def _short(value: object, width: int = 28) -> str:
    text = "none" if value is None else str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def config_diff(stored: dict, current: dict, ignore: tuple[str, ...] = IGNORED_SETTINGS, limit: int = 4) -> list[str]:
    """'epochs 50 -> 100' for each setting in which two run identities differ (stored first), at most `limit`
    and a count of the rest; a differing input digest reads as 'the input frames'. Empty when they agree."""
    old, new = _flatten(stored), _flatten(current)
    keys = [k for k in dict.fromkeys([*new, *old]) if k.rsplit(".", 1)[-1] not in ignore and old.get(k) != new.get(k)]
    inputs, settings = [], []  # another input explains everything else, so it comes first
    for key in keys:
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "digest":
            inputs.append("the input frames (another input, --start, --frames or --resolution)")
        elif leaf == "start":
            inputs.append("the model it starts from")
        else:
            name = key.split(".", 1)[-1] if "." in key else key
            settings.append(f"{name} {_short(old.get(key))} -> {_short(new.get(key))}")
    out = list(dict.fromkeys(inputs + settings))
    return out[:limit] + ([f"{len(out) - limit} more"] if len(out) > limit else [])


def run_mismatch(state: dict, identity: dict) -> str | None:
    """Why a checkpoint's stored identity is not this run's (naming the settings that differ), or None."""
    diff = config_diff({k: state.get(k) for k in identity}, identity)
    if not diff:
        return None
    return ("with other settings (checkpoint -> now): " + ", ".join(diff) +
            "; use the same options and input, or --restart to discard it")


def checkpoints_in(run_dir: str | os.PathLike) -> list[Path]:
    """Every checkpoint file in a run folder and its stage subfolders (prune/, qat/, denoise/)."""
    root = Path(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for name in CHECKPOINT_FILES for p in root.rglob(name) if p.is_file())


def check_run_dir(run_dir: str | os.PathLike, resume: bool, restart: bool) -> str | None:
    """The rule of every resumable command, checked before any work: a checkpoint is never overwritten by a
    run that was not told what to do with it. Raises CheckpointError for a checkpoint without --resume or
    --restart; returns a note for --resume without a checkpoint (the run then starts from the beginning)."""
    found = checkpoints_in(run_dir)
    if found and not (resume or restart):
        raise CheckpointError(f"{run_dir} holds the checkpoint of an earlier run: add --resume to continue it, "
                              "or --restart to discard it")
    if resume and not found:
        return f"no checkpoint in {run_dir} to resume: starting from the beginning"
    return None


def discard_checkpoints(run_dir: str | os.PathLike) -> None:
    """--restart: delete the run folder's checkpoint files (and nothing else), so no stage resumes from them."""
    for path in checkpoints_in(run_dir):
        path.unlink(missing_ok=True)


def recorded_seconds(run_dir: str | os.PathLike) -> float:
    """Seconds of training the run folder's checkpoints record (fit, prune, rd, qat): on --resume, the part
    of a time budget that earlier runs already spent."""
    total = 0.0
    for path in checkpoints_in(run_dir):
        if path.name == CHECKPOINT_NAME:
            seconds = _read(path).get("seconds")
            total += float(seconds) if isinstance(seconds, (int, float)) else 0.0
    return total


def _write(path: Path, state: dict) -> None:
    """Atomic: write to a side file, then rename over the old checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged checkpoint is a user-facing problem, not a crash
        raise CheckpointError(f"cannot read checkpoint {path}: {e.__class__.__name__}; use --restart to discard it") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a checkpoint of dnerv; use --restart to discard it")
    return state


class StopAtStepBoundary:
    """Turns the first Ctrl-C into `requested`, checked by the loop between steps; a second one interrupts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopAtStepBoundary":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Checkpointer:
    """Periodic checkpoints of one training loop in `run_dir` (None: checkpointing off).

    `key` is a plain dict (options, input digest) that must match for a resume to be accepted.
    """

    def __init__(self, run_dir: str | os.PathLike | None, key: dict, minutes: float = 5.0,
                 name: str = CHECKPOINT_NAME) -> None:
        self.path = Path(run_dir) / name if run_dir is not None else None
        self.key = key
        self.minutes = minutes
        self._last = time.perf_counter()

    def restore(self, resume: bool) -> dict | None:
        """The saved state when resuming and a checkpoint exists; CheckpointError if it is another run's."""
        if not resume or self.path is None or not self.path.exists():
            return None
        state = _read(self.path)
        if not isinstance(state.get("key"), dict):
            raise CheckpointError(f"{self.path} was written by an older dnerv (or another program); use --restart "
                                  "to discard it")
        why = run_mismatch(state["key"], self.key)
        if why:
            raise CheckpointError(f"{self.path} was written {why}")
        return state

    def restore_training(self, resume: bool, net: torch.nn.Module, opt: torch.optim.Optimizer) -> dict | None:
        """restore(), loading the network and optimizer saved by save_training(); returns the whole state."""
        state = self.restore(resume)
        if state is not None:
            net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
        return state

    def save_training(self, net: torch.nn.Module, opt: torch.optim.Optimizer, run_state: dict) -> None:
        """save() a network, its optimizer and the caller's own run state in one checkpoint."""
        self.save({"net": net.state_dict(), "opt": opt.state_dict(), **run_state})

    def due(self) -> bool:
        return self.path is not None and time.perf_counter() - self._last > self.minutes * 60

    def save(self, state: dict) -> None:
        if self.path is None:
            return
        _write(self.path, {**state, "key": self.key})
        self._last = time.perf_counter()

    def where(self) -> str:
        """'; resume with --resume (checkpoint in DIR)' for interrupt messages, or '' without a run folder."""
        return f"; resume with --resume (checkpoint in {self.path.parent})" if self.path is not None else ""
