"""Structure-aware fuzz (tests/fuzz_fields.py): >= 10,000 field edits with valid CRCs through decode and info.

Every case must end as a valid decode or one of our errors (DnervError), each within 1 s, with bounded
allocation (tracemalloc on a sample: 16x the file + 1 MiB + the entropy tables' fixed working memory,
TABLE_MEMORY; and the process's peak RSS over the whole run). `decode` and `info` share
one parser: on a sample of cases both run and must agree on the outcome and the message.
"""

from __future__ import annotations

import hashlib
import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from dnervcodec.codec import _run_segment, parse
from dnervcodec.compress.entropy import TABLE_MEMORY
from dnervcodec.errors import DnervError
from dnervcodec.info import describe_bytes, format_info
from tests.fuzz_fields import cases

SEED = 2024
MIN_CASES = 10_000
# Header and ancillary edits change what `info` prints, not the tensors: they always run through info, and
# through decode on every AGREE_EVERY-th case (their tensors, hence the network's output, are the base file's).
# Other families run through decode, and through info too on every AGREE_EVERY-th case.
INFO_FAMILIES = {"header", "ancillary"}
AGREE_EVERY = 10
TRACE_EVERY = 40


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _network_key(info) -> str:
    """What the decoder network computes from: configs, weights and embeddings of every segment."""
    h = hashlib.sha256()
    for s in info.segments:
        h.update(json.dumps(s.decoder.to_dict()).encode())
        for name in sorted(s.weights):
            h.update(name.encode() + s.weights[name].tobytes())
        h.update(s.content.tobytes())
        if s.diff is not None:
            h.update(s.diff.tobytes())
    return h.hexdigest()


def _info(data: bytes) -> str | None:
    """What `dnerv info` does with the file: None, or the message of our error."""
    try:
        report = describe_bytes(data, "fuzz.dnerv")
        format_info(report).encode("utf-8")  # what `dnerv info` prints
        json.dumps(report, indent=1)  # what `dnerv info --json` prints
    except DnervError as e:
        return str(e)
    return None


def _parse(data: bytes):
    """(StreamInfo, None) or (None, the message of our error): the parser `decode` runs, then the entropy
    decoding of every segment that decoding the whole clip runs (parse itself decodes none)."""
    try:
        info = parse(data)
        for segment in info.segments:
            segment.arrays
        return info, None
    except DnervError as e:
        return None, str(e)


def _decode_frames(info) -> int:
    frames = [_run_segment(s, 0, s.frames, torch.device("cpu"), info.limits) for s in info.segments]
    out = np.concatenate(frames)
    assert out.shape == (info.video["frames"], info.video["height"], info.video["width"], 3)
    return out.shape[0]


@pytest.fixture
def one_thread():
    """The cases are tiny: one thread avoids OpenMP's cost on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_field_fuzz_ends_in_a_decode_or_our_error(one_thread) -> None:
    rss_tracked = _peak_rss_reset()
    rss_before = _rss("VmRSS") if rss_tracked else 0
    outcomes: dict[str, list] = {}  # family -> [decoded, refused, seconds]
    decoded: set[str] = set()
    worst = (0.0, "")
    worst_alloc = (0, "")
    n = 0
    t_all, cpu_all = time.perf_counter(), time.process_time()
    for n, (family, what, data) in enumerate(cases(SEED), 1):
        label = f"case {n} ({family}: {what}; seed {SEED})"
        trace = n % TRACE_EVERY == 0
        if trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        try:
            info_error = decode_error = None
            run_info = family in INFO_FAMILIES or n % AGREE_EVERY == 0
            run_decode = family not in INFO_FAMILIES or n % AGREE_EVERY == 0
            if run_info:
                info_error = _info(data)
            if run_decode:
                stream, decode_error = _parse(data)
                if run_info:
                    assert info_error == decode_error, f"info said {info_error!r}, decode said {decode_error!r}"
                if stream is not None and (key := _network_key(stream)) not in decoded:
                    _decode_frames(stream)
                    decoded.add(key)
            ok = (decode_error if run_decode else info_error) is None
        except Exception as exc:  # noqa: BLE001 - the point of the test
            raise AssertionError(f"{label} raised {type(exc).__name__}: {exc}") from exc
        finally:
            elapsed = time.perf_counter() - t0
            if trace:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                if peak > worst_alloc[0]:
                    worst_alloc = (peak, label)
                assert peak < 16 * len(data) + (1 << 20) + TABLE_MEMORY, f"{label} allocated {peak} bytes"
        assert elapsed < 1.0, f"{label} took {elapsed:.2f} s"
        if elapsed > worst[0]:
            worst = (elapsed, label)
        counts = outcomes.setdefault(family, [0, 0, 0.0])
        counts[0 if ok else 1] += 1
        counts[2] += elapsed
    total, cpu = time.perf_counter() - t_all, time.process_time() - cpu_all
    summary = ", ".join(f"{fam}: {ok} ok/{bad} refused in {sec:.1f} s" for fam, (ok, bad, sec) in outcomes.items())
    grown = (_rss("VmHWM") - rss_before) / 2**20 if rss_tracked else float("nan")
    print(f"\n{n} cases in {total:.1f} s ({cpu:.1f} s CPU; {len(decoded)} distinct networks run); "
          f"slowest {worst[0] * 1e3:.0f} ms "
          f"({worst[1]}); largest traced allocation {worst_alloc[0] / 2**20:.2f} MiB ({worst_alloc[1]}); "
          f"peak RSS +{grown:.0f} MiB; {summary}")
    assert n >= MIN_CASES
    assert all(ok and bad for ok, bad, _ in outcomes.values()), outcomes  # each family reaches both outcomes
    if rss_tracked:
        assert grown < 128, f"peak RSS grew by {grown:.0f} MiB"
