"""Derive the up/down-sampling strides of a NeRV-family model for any frame size.

The papers use 640x1280 with strides 5,4,4,2,2 (a 2x4 content embedding). We generalise: the total stride
S is the largest divisor of gcd(H, W) made of the factors 2, 3 and 5 that keeps both embedding sides at
least `min_side` (and, with a diff stream, is a multiple of the diff stride), split into at most
`max_stages` strides of at most 5 each, largest first (largest upsampling at the lowest resolution).
"""

from __future__ import annotations

import math

from ..errors import ConfigError

ALLOWED_PRIMES = (2, 3, 5)
MAX_STRIDE = 5
LAYOUTS = ((16, 2), (32, 2), (32, 1), (64, 2), (64, 1))  # (diff stride, min content-embedding side), paper first


def _prime_factors(n: int) -> list[int]:
    out = []
    for p in ALLOWED_PRIMES:
        while n % p == 0:
            out.append(p)
            n //= p
    return out if n == 1 else []


def split_stride(total: int, max_stages: int) -> tuple[int, ...] | None:
    """Split `total` into at most `max_stages` factors <= 5, largest first; None if impossible."""
    if total == 1:
        return ()
    factors = _prime_factors(total)
    if not factors:
        return None
    # Merge the two smallest factors while there are too many stages and the product stays <= 5.
    factors.sort()
    while len(factors) > max_stages:
        a, b = factors[0], factors[1]
        if a * b > MAX_STRIDE:
            return None
        factors = sorted([a * b] + factors[2:])
    return tuple(sorted(factors, reverse=True))


def plan_strides(
    height: int, width: int, diff_stride: int | None = 16, max_stages: int = 5, min_side: int = 2
) -> tuple[int, ...] | None:
    """Strides (largest first within the head and within the tail) or None if this size cannot be built.

    With a diff stride, the last strides multiply to exactly `diff_stride`, so the decoder has a map at
    1/diff_stride of the frame where the diff embedding is fused (for 640x1280: 5,4 | 4,2,2 as in DNeRV).
    """
    g = math.gcd(height, width)
    for total in sorted((d for d in range(2, g + 1) if g % d == 0), reverse=True):
        if min(height, width) // total < min_side:
            continue
        if diff_stride is None:
            strides = split_stride(total, max_stages)
            if strides:
                return strides
            continue
        if total % diff_stride:
            continue
        tail = split_stride(diff_stride, min(3, max_stages - 1))
        head = split_stride(total // diff_stride, max_stages - len(tail)) if tail else None
        if head is not None:
            return head + tail
    return None


def derive_strides(
    height: int, width: int, diff_stride: int | None = 16, max_stages: int = 5, min_side: int = 2
) -> tuple[int, ...]:
    """Strides for this size, or a ConfigError that names the nearest sizes that work."""
    strides = plan_strides(height, width, diff_stride, max_stages, min_side)
    if strides is None:
        near = nearest_sizes(height, width, diff_stride, max_stages, min_side)
        hint = ", ".join(f"{h}x{w}" for h, w in near) or "sizes whose sides share factors of 2, 3 and 5"
        why = f" with a diff stream at 1/{diff_stride}" if diff_stride else ""
        raise ConfigError(f"cannot build the model for {height}x{width}{why}; nearest sizes that work: {hint}")
    return strides


def diff_strides(diff_stride: int, max_stages: int = 3) -> tuple[int, ...]:
    """Strides of the diff encoder, whose output lies at 1/diff_stride of the frame."""
    strides = split_stride(diff_stride, max_stages)
    if not strides:
        raise ConfigError(f"diff stride {diff_stride} cannot be split into {max_stages} strides of 2..5")
    return strides


def fusion_stage(strides: tuple[int, ...], diff_stride: int) -> int | None:
    """Index of the decoder stage whose *input* map is at 1/diff_stride of the frame, or None."""
    remaining = math.prod(strides)
    for i, s in enumerate(strides):
        if remaining == diff_stride:
            return i
        remaining //= s
    return None


def nearest_sizes(
    height: int, width: int, diff_stride: int | None = 16, max_stages: int = 5, min_side: int = 2, count: int = 3
) -> list[tuple[int, int]]:
    """The sizes closest to height x width (relative change of each side) that the model can be built for."""
    candidates = []
    def even_range(n: int) -> range:
        return range(max(2 * min_side, (n - n // 4) // 2 * 2), n + n // 4 + 1, 2)

    for h in even_range(height):
        for w in even_range(width):
            candidates.append((abs(h - height) / height + abs(w - width) / width, h, w))
    candidates.sort()
    found: list[tuple[int, int]] = []
    for _, h, w in candidates:
        if plan_strides(h, w, diff_stride, max_stages, min_side) is not None:
            found.append((h, w))
            if len(found) == count:
                break
    return found
