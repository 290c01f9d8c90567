"""Retry delays, written once as a pure function."""

from __future__ import annotations

import random

# First retry waits up to this long (seconds).
DEFAULT_BASE = 1.0
# Delays stop growing here (seconds).
DEFAULT_MAX_BACKOFF = 600.0


def backoff_cap(attempt: int, *, base: float = DEFAULT_BASE, factor: float = 2.0,
                max_backoff: float = DEFAULT_MAX_BACKOFF) -> float:
    """The ceiling of the delay before retry number ``attempt`` (1-based)."""
    if attempt < 1:
        return 0.0
    # Compute in log space past the ceiling so huge attempts don't overflow.
    exp = min(attempt - 1, 64)
    return min(max_backoff, base * factor**exp)


def compute_backoff(attempt: int, *, base: float = DEFAULT_BASE, factor: float = 2.0,
                    max_backoff: float = DEFAULT_MAX_BACKOFF, jitter: bool = True,
                    rng: random.Random | None = None) -> float:
    """Delay in seconds before retry ``attempt``: exponential with full jitter.

    Full jitter (uniform in ``[0, cap]``) spreads the retries of many failing
    batches so a recovering endpoint is not hit by all of them at once.
    """
    cap = backoff_cap(attempt, base=base, factor=factor, max_backoff=max_backoff)
    if not jitter:
        return cap
    return (rng or random).uniform(0.0, cap)


def expected_total(attempts: int, *, base: float = DEFAULT_BASE, factor: float = 2.0,
                   max_backoff: float = DEFAULT_MAX_BACKOFF) -> float:
    """Expected sum of the delays of ``attempts`` retries with full jitter (half the caps)."""
    return sum(backoff_cap(a, base=base, factor=factor, max_backoff=max_backoff) for a in range(1, attempts + 1)) / 2
