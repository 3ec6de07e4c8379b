"""Per-tensor entropy-coding report of a .dnerv file: coded size against the empirical entropy of its symbols.

    python tools/entropy_report.py bunny.dnerv

For each tensor: symbol count, the model chosen, the zeroth-order empirical entropy of its symbols, the
coded payload (range-coder words), their ratio, and the side information (quantization and model
parameters) reported separately.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dnervcodec.bitstream import read_container
from dnervcodec.compress.entropy import decode_symbols, empirical_entropy_bits, side_info_bits


def report(path: Path) -> list[dict]:
    rows = []
    for seg in read_container(path.read_bytes()).segments:
        for name, t in seg.tensors.items():
            symbols = decode_symbols(t.coded)
            entropy = empirical_entropy_bits(symbols, t.coded.alphabet)
            payload = 32 * len(t.coded.words)
            rows.append({
                "tensor": name, "symbols": int(symbols.size), "model": t.coded.model,
                "entropy_bits": entropy, "payload_bits": payload,
                "ratio": payload / entropy if entropy > 0 else float("nan"),
                "side_bits": side_info_bits(t.coded) + t.quant.side_info_bits,
            })
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    rows = report(Path(argv[0]))
    print(f"{'tensor':<28}{'symbols':>9}  {'model':<12}{'entropy b':>11}{'coded b':>10}{'ratio':>8}{'side b':>8}")
    for r in rows:
        print(f"{r['tensor']:<28}{r['symbols']:>9}  {r['model']:<12}{r['entropy_bits']:>11.0f}{r['payload_bits']:>10}"
              f"{r['ratio']:>8.4f}{r['side_bits']:>8}")
    ent = sum(r["entropy_bits"] for r in rows)
    pay = sum(r["payload_bits"] for r in rows)
    side = sum(r["side_bits"] for r in rows)
    print(f"{'all tensors':<28}{sum(r['symbols'] for r in rows):>9}  {'':<12}{ent:>11.0f}{pay:>10}{pay / ent:>8.4f}{side:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
