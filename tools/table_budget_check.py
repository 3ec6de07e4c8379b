"""The most table work a segment's stream may ask of a format-4 decoder, and what it costs here.

    python tools/table_budget_check.py [--words N ...]

For each stream size (32-bit words), a crafted segment at the limits: a constant tensor of as many symbols
as the ratio bound allows (a one-entry table: no bits, only padding words), which raises the table budget
by 4 entries a symbol, and 16-bit Gaussian tensors of one symbol per group, with as many parameter rows as
the budget then admits (rows x 65,536 entries). Prints the bytes, the table entries, and the time and
traced allocation of checking and decoding the stream (tables included), so the cost per stored byte can
be read off.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dnervcodec.compress.entropy import (  # noqa: E402
    FREE_SYMBOLS,
    SYMBOLS_PER_WORD,
    CodedSymbols,
    check_stream,
    decode_stream,
    encode_stream,
    table_budget,
)

ALPHABET = 1 << 16


def crafted(words: int) -> tuple[np.ndarray, list]:
    """(stream, [(coded, shape)]) of a segment using all the table budget `words` words allow."""
    constant = FREE_SYMBOLS + SYMBOLS_PER_WORD * words - 2 * 4096  # room left for the Gaussian symbols
    rows = (table_budget(constant) // ALPHABET) - 1
    rng = np.random.default_rng(0)
    params = np.stack([np.float16(rng.uniform(0, 65504, rows)), np.full(rows, np.float16(3000.0))], 1)
    gaussian = CodedSymbols("gaussian", ALPHABET, rows, params.astype(np.float64), None, axis=0)
    flat = CodedSymbols("categorical", ALPHABET, constant, np.array([7.0, float(constant)]), None)
    symbols = np.clip(np.rint(rng.normal(params[:, 0], 3000.0)), 0, ALPHABET - 1).astype(np.int64).reshape(rows, 1)
    items = [(flat, np.full(constant, 7)), (gaussian, symbols)]
    stream = encode_stream(items)
    return stream, [(c, np.shape(s)) for c, s in items]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python tools/table_budget_check.py", description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, nargs="+", default=[1 << 12, 1 << 14, 1 << 16])
    args = ap.parse_args(argv)
    for words in args.words:
        stream, items = crafted(words)
        entries = sum(c.params.shape[0] * c.alphabet for c, _ in items if c.model == "gaussian")
        tracemalloc.start()
        t0 = time.perf_counter()
        check_stream(items, stream.size)
        decode_stream(stream, items)
        seconds = time.perf_counter() - t0
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        symbols = sum(c.count for c, _ in items)
        print(f"{stream.size:,} words ({4 * stream.size:,} bytes): {symbols:,} symbols, {entries:,} table entries "
              f"({entries / (4 * stream.size):.0f} a stored byte); checked and decoded in {seconds:.2f} s "
              f"({seconds / (4 * stream.size) * 1e6:.2f} us a byte), largest traced allocation "
              f"{traced / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
