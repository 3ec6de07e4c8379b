"""Compact coding of small integer tables (the histogram counts of categorical entropy models).

An adaptive Rice code with integer arithmetic only, so every machine reads the same table: a few bits per
count rather than 32. The decoder is bounded work on untrusted input (see :func:`unpack_counts`).
"""

from __future__ import annotations

import numpy as np

from ..errors import BitstreamError

RICE_ESCAPE = 24  # a count whose unary part would reach this is written in full after it
RICE_HALVE_AT = 32  # the adaptive Rice state forgets by halving once it has seen this many counts



def _rice_k(acc: int, seen: int) -> int:
    """Smallest k with seen * 2^k >= acc: the Rice parameter that fits a running mean of acc / seen."""
    k = 0
    while (seen << k) < acc:
        k += 1
    return k


def pack_counts(counts: np.ndarray) -> bytes:
    """Integer histogram counts -> bytes, with an adaptive Rice code (integer arithmetic only).

    Each count c is coded with the parameter k that fits the running mean of the counts before it: the
    quotient c >> k in unary (zeros ended by a one), then the k low bits. A quotient of RICE_ESCAPE or more
    is written as RICE_ESCAPE zeros followed by c in full (as many bits as the total needs), so one huge
    count in a flat neighbourhood costs tens of bits, not millions. The running state starts at the mean
    count (the decoder knows the table length and the total) and halves every RICE_HALVE_AT counts.
    """
    counts = [int(c) for c in np.asarray(counts).reshape(-1)]
    if not counts or min(counts) < 0:
        raise ValueError("counts must be a non-empty list of non-negative integers")
    total = sum(counts)
    width = max(1, total.bit_length())
    acc, seen = max(1, total // len(counts)), 1
    bits: list[str] = []
    for c in counts:
        k = _rice_k(acc, seen)
        q = c >> k
        if q < RICE_ESCAPE:
            bits.append("0" * q + "1" + (format(c & ((1 << k) - 1), f"0{k}b") if k else ""))
        else:
            bits.append("0" * RICE_ESCAPE + format(c, f"0{width}b"))
        acc, seen = acc + c, seen + 1
        if seen >= RICE_HALVE_AT:
            acc, seen = (acc + 1) >> 1, seen >> 1
    text = "".join(bits)
    text += "0" * (-len(text) % 8)
    return int(text, 2).to_bytes(len(text) // 8, "big") if text else b""


def unpack_counts(data: bytes, n: int, total: int) -> np.ndarray:
    """Inverse of :func:`pack_counts` for an n-entry table summing to `total`; BitstreamError if malformed.

    Bounded work: every entry consumes at least one bit of `data`, and every count is checked against
    what is left of the total before the next one is read.
    """
    if n < 1 or n > 8 * len(data):
        raise BitstreamError(f"corrupt tensor: a table of {n} entries cannot fit in {len(data)} bytes")
    text = format(int.from_bytes(data, "big"), f"0{8 * len(data)}b")
    width = max(1, total.bit_length())
    acc, seen = max(1, total // n), 1
    pos, left = 0, total
    out = np.empty(n, np.int64)
    for i in range(n):
        k = _rice_k(acc, seen)
        one = text.find("1", pos, pos + RICE_ESCAPE)
        if one >= 0:
            q, pos = one - pos, one + 1
            if pos + k > len(text):
                raise BitstreamError("corrupt tensor: probability table runs past its bytes")
            c = (q << k) | (int(text[pos : pos + k], 2) if k else 0)
            pos += k
        else:
            pos += RICE_ESCAPE
            if pos + width > len(text):
                raise BitstreamError("corrupt tensor: probability table runs past its bytes")
            c = int(text[pos : pos + width], 2)
            pos += width
        if c > left:
            raise BitstreamError("corrupt tensor: probability table counts exceed the symbol count")
        out[i], left = c, left - c
        acc, seen = acc + c, seen + 1
        if seen >= RICE_HALVE_AT:
            acc, seen = (acc + 1) >> 1, seen >> 1
    if left or text.find("1", pos) >= 0:
        raise BitstreamError("corrupt tensor: probability table does not match the symbol count")
    return out
