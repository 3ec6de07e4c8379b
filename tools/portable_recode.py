"""Re-code the tensors of .dnerv files of format 3.x with the portable (integer-table) models of format 4.

    python tools/portable_recode.py a.dnerv b.dnerv ... [--tensors]

For each file: its size as written (float models), then the same quantized symbols written as format 4 in
two ways: *same models* keeps every tensor's model and parameters and only swaps constriction's float
tables for the integer ones (what rewriting an old file does); *re-chosen* lets today's encoder choose
each tensor's model again (what a new encode writes for the same symbols). Both are decoded back and
checked symbol for symbol, and the time to parse and entropy-decode each file is measured (best of 3).
``--tensors`` adds one line per tensor: model and information bits under each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from dnervcodec.bitstream import (
    Container,
    encode_quantized_segment,
    file_version,
    group_axes,
    read_container,
    segment_symbols,
    shared_stream,
    write_container,
)
from dnervcodec.compress.entropy import information_bits


def _label(coded) -> str:
    axis = "" if coded.axis is None else f"/{coded.axis}"
    return f"{coded.model}{axis}{'+pin' if coded.pinned else ''}"


def _decode_seconds(data: bytes) -> float:
    """Best of 3: parse the file and entropy-decode every segment's symbols (no network)."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for seg in read_container(data).segments:
            segment_symbols(seg)
        best = min(best, time.perf_counter() - t0)
    return best


def recode(path: Path, tensors: bool) -> list[str]:
    data = path.read_bytes()
    old = read_container(data)
    same, chosen, lines = [], [], []
    for seg in old.segments:
        symbols = segment_symbols(seg)
        same.append(shared_stream(seg))
        quantized = {name: (symbols[name], t.quant, group_axes("embedding" if name.startswith("e.") else "weight",
                                                              len(t.quant.shape)))
                     for name, t in seg.tensors.items()}
        chosen.append(encode_quantized_segment(seg.meta, quantized))
        if tensors:
            for name, t in seg.tensors.items():
                a, b = same[-1].tensors[name].coded, chosen[-1].tensors[name].coded
                s = symbols[name]
                lines.append(f"  {name:28s} {s.size:8d}  float {_label(t.coded):16s} "
                             f"{information_bits(t.coded, s):10.1f}  same {information_bits(a, s):10.1f}  "
                             f"re-chosen {_label(b):16s} {information_bits(b, s):10.1f}")
    sizes, seconds = {}, {"as written": _decode_seconds(data)}
    for label, segments in (("same models", same), ("re-chosen", chosen)):
        out = write_container(Container(header=old.header, segments=segments, ancillary=old.ancillary))
        back = read_container(out)
        for s_old, s_new in zip(old.segments, back.segments):
            a, b = segment_symbols(s_old), segment_symbols(s_new)
            assert all(np.array_equal(a[k], b[k]) for k in a), f"{path}: {label} changed the symbols"
        sizes[label], seconds[label] = len(out), _decode_seconds(out)
    words = lambda segs: sum(int(s.stream.size) for s in segs)  # noqa: E731
    head = (f"{path.name}: {len(data):,} B as written (format {'.'.join(map(str, file_version(data)))}, float models); "
            f"format 4 same models {sizes['same models']:,} B ({sizes['same models'] / len(data) - 1:+.3%}), "
            f"re-chosen {sizes['re-chosen']:,} B ({sizes['re-chosen'] / len(data) - 1:+.3%}); CODE words "
            f"{words(old.segments):,} -> {words(same):,} / {words(chosen):,}; parse + entropy decode "
            f"{seconds['as written'] * 1e3:.0f} / {seconds['same models'] * 1e3:.0f} / "
            f"{seconds['re-chosen'] * 1e3:.0f} ms")
    return [head] + lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--tensors", action="store_true", help="one line per tensor")
    args = parser.parse_args()
    for path in args.files:
        for line in recode(path, args.tensors):
            print(line, flush=True)


if __name__ == "__main__":
    main()
