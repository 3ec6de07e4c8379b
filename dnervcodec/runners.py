"""Executors of segment jobs (segments.run_segment): in this process, in K local processes, or as Ray tasks.

Each is a thin adapter around the same pure job: it yields results as jobs finish (in any order; the caller
writes the file in segment order once all are in) and forwards every job's progress events to the one
progress line drawn in this process. A job carries its own thread count and seed, so which runner ran it,
and how many ran at once, does not change its bytes.

- InProcess: one job after another, here.
- LocalProcesses(K): K worker processes started with `spawn` (no fork of a process holding torch threads),
  fed from a queue; a worker that dies (e.g. killed for memory) fails the encode with one line.
- RayTasks(address): each segment one Ray task asking for `threads` CPUs (and a GPU when the encode runs on
  CUDA), retried by Ray when its worker dies; the retry finds its checkpoint folder (on storage the
  workers share) and resumes there. The job's code travels with it (runtime_env py_modules), so every
  machine runs this very dnervcodec.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import pickle
import queue
import signal
import uuid
from dataclasses import replace
from typing import Iterator, Protocol, Sequence

from .cluster import AUTO, probe
from .errors import ConfigError, DnervError
from .progress import EventSink, ForwardProgress
from .segments import SegmentJob, SegmentResult, run_segment

RAY_RETRIES = 3  # reruns of a segment whose Ray worker died (not of a job that raised an error)
STOP_SECONDS = 30.0  # after Ctrl-C, how long local workers get to checkpoint and stop before being ended


class Runner(Protocol):
    remote: bool  # whether jobs run in other processes (their progress then reaches us as events)

    def run(self, jobs: Sequence[SegmentJob], sink: EventSink) -> Iterator[SegmentResult]: ...


class InProcess:
    """Every job in this process, one after the other."""

    remote = False

    def run(self, jobs: Sequence[SegmentJob], sink: EventSink) -> Iterator[SegmentResult]:
        for job in jobs:
            yield run_segment(job, ForwardProgress(sink, job.index))


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it pickles (ours do), else a RuntimeError with its text."""
    try:
        pickle.dumps(exc)
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _serve(tasks: "mp.Queue", events: "mp.Queue") -> None:
    """A worker process: run jobs from `tasks` until None, sending progress, results and errors to `events`.
    After an error (or Ctrl-C, which reaches the workers too) it stops: the encode is over."""
    while True:
        job = tasks.get()
        if job is None:
            return
        try:
            events.put((job.index, "result", run_segment(job, ForwardProgress(events, job.index))))
        except BaseException as e:  # noqa: BLE001 - reported to the parent, which raises it
            events.put((job.index, "error", _portable(e)))
            return


def _ended(exitcode: int) -> str:
    if exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.Signals._value2member_map_ else -exitcode
        return f"was killed by {name}" + (" (out of memory?)" if exitcode == -signal.SIGKILL else "")
    return f"exited with code {exitcode}"


class LocalProcesses:
    """Jobs in `workers` local processes (spawned), each job at its own fixed thread count."""

    remote = True

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.workers = workers

    def run(self, jobs: Sequence[SegmentJob], sink: EventSink) -> Iterator[SegmentResult]:
        ctx = mp.get_context("spawn")
        tasks, events = ctx.Queue(), ctx.Queue()
        count = min(self.workers, len(jobs))
        for job in jobs:
            tasks.put(job)
        for _ in range(count):
            tasks.put(None)
        procs = [ctx.Process(target=_serve, args=(tasks, events), name=f"dnerv-worker-{i}", daemon=True)
                 for i in range(count)]
        for p in procs:
            p.start()
        left = len(jobs)
        try:
            while left:
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead:
                        raise DnervError(f"a worker process {_ended(dead[0].exitcode)} before its segment was "
                                         "coded; its checkpoint stays for --resume")
                    continue
                index, kind, *rest = event
                if kind == "result":
                    left -= 1
                    yield rest[0]
                elif kind == "error":
                    raise rest[0]
                else:
                    sink.put(event)
        except KeyboardInterrupt:
            # A Ctrl-C from the terminal reached the workers too: they checkpoint at the next step and stop.
            for p in procs:
                p.join(STOP_SECONDS)
            raise
        finally:
            for p in procs:
                if p.is_alive() and left:
                    p.terminate()
                p.join()
            tasks.close()
            events.close()


def _ray_job(job: SegmentJob, events) -> SegmentResult:
    """A Ray task: one segment job, its progress sent to the driver's queue actor."""
    return run_segment(job, ForwardProgress(events, job.index))


class RayTasks:
    """Each job one Ray task on the cluster at `address` (AUTO: the local instance, started if none runs)."""

    remote = True

    def __init__(self, address: str = AUTO, retries: int = RAY_RETRIES) -> None:
        self.address, self.retries = address, retries

    def run(self, jobs: Sequence[SegmentJob], sink: EventSink) -> Iterator[SegmentResult]:
        import ray
        from ray.util.queue import Empty, Queue

        connected = connect_ray(self.address)
        pending: list = []
        try:
            events = Queue(actor_options={"num_cpus": 0})
            attempt = uuid.uuid4().hex  # a rerun of a job in this encode finds it in its folder and resumes
            gpus = ray.cluster_resources().get("GPU", 0)
            task = ray.remote(_ray_job)
            index = {}
            for job in jobs:
                options = {"num_cpus": job.threads, "num_gpus": _gpus(job.cfg.device, gpus),
                           "max_retries": self.retries, "retry_exceptions": False}
                ref = task.options(**options).remote(replace(job, attempt=attempt), events)
                index[ref] = job.index
                pending.append(ref)
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                _drain(events, sink, Empty)
                for ref in done:
                    yield _ray_result(ray, ref, index[ref], self.retries)
            _drain(events, sink, Empty)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            if connected:
                ray.shutdown()


def _gpus(device: str, available: float) -> int:
    """GPUs a task asks for: one for a CUDA encode (auto: when the cluster has any), none for the CPU."""
    if device.startswith("cuda"):
        if available < 1:
            raise ConfigError(f"--device {device}: the Ray cluster has no GPU; use --device cpu or auto")
        return 1
    return 1 if device == "auto" and available >= 1 else 0


def _drain(events, sink: EventSink, empty: type) -> None:
    while True:
        try:
            batch = events.get_nowait_batch(max(1, events.qsize()))
        except empty:
            return
        if not batch:
            return
        for event in batch:
            sink.put(event)


def _ray_result(ray, ref, index: int, retries: int) -> SegmentResult:
    """The task's result; our own errors come back as themselves, a worker lost every time as one line."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, DnervError):
            raise cause from None
        raise
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
        raise DnervError(f"segment {index}: its Ray worker was lost {retries + 1} times ({type(e).__name__}); "
                         "its checkpoint stays for --resume") from None


def connect_ray(address: str) -> bool:
    """Join the cluster at `address`, or for AUTO the local instance (started when none runs). True when
    this call connected, so the caller disconnects (which also stops an instance it started)."""
    import ray

    import dnervcodec

    if ray.is_initialized():
        return False
    options = {"logging_level": logging.ERROR, "log_to_driver": False,
               "runtime_env": {"py_modules": [dnervcodec]}}
    if address == AUTO:
        try:
            ray.init(address="auto", **options)
        except ConnectionError:
            ray.init(include_dashboard=False, **options)
    else:
        probe(address)
        ray.init(address=address, **options)
    return True


def make_runner(workers: int = 1, ray: str | None = None) -> Runner:
    """The runner the options ask for: Ray tasks (`ray` an address or AUTO), K processes, or this process."""
    if ray is not None:
        return RayTasks(ray)
    return LocalProcesses(workers) if workers > 1 else InProcess()
