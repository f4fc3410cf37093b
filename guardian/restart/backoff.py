"""Restart delays: exponential growth, capped, with a little jitter so restarts do not synchronise.

Pure: the random source is an argument, so tests pass a fixed one.
"""

from __future__ import annotations

import random
from typing import Callable


def backoff_delay(attempt: int, initial: float, cap: float, jitter_fraction: float = 0.1,
                  rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before restart number ``attempt`` (1 = the first restart after a failure).

    The base delay doubles with every attempt (``initial``, ``2*initial``, ...) up to ``cap``; the
    jitter moves it by up to ``jitter_fraction`` of itself either way, and the result never
    exceeds ``cap`` nor drops below zero. ``rng()`` returns a float in [0, 1).
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    if initial < 0 or cap < 0 or not 0 <= jitter_fraction <= 1:
        raise ValueError("initial and cap must be >= 0 and jitter_fraction within [0, 1]")
    exponent = min(attempt - 1, 64)  # 2**64 * initial is far beyond any cap; avoids overflow
    base = min(cap, initial * (2.0 ** exponent))
    spread = base * jitter_fraction * (2.0 * rng() - 1.0)
    return max(0.0, min(cap, base + spread))
