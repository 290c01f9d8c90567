"""The clock, as a collaborator: production code takes ``clock`` and tests pass a fake."""

from __future__ import annotations

import time
from typing import Protocol

from shared.redis_conn import REDIS_DOWN


class Clock(Protocol):
    def now(self) -> float:  # seconds since the epoch
        ...

    def sleep(self, seconds: float) -> None:
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to (``sleep`` advances it)."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        self.t += seconds


def now_ms(clock: Clock) -> int:
    return int(clock.now() * 1000)


def redis_now(r) -> float:
    """The Redis server's clock now (s), for one-off callers (CLI commands, hooks, scrapes):
    every deadline and score in Redis is written in it, whatever this host's clock says."""
    sec, usec = r.time()
    return sec + usec / 1e6


class RedisClock:
    """The Redis server's clock (``TIME``), shared by every host that uses the same Redis.

    Deadlines that several hosts compare (the limiter, pauses, the breaker,
    batch leases, resync start times) are written and read in this time, so a
    host whose own clock is minutes off changes nothing. ``TIME`` is read once
    every ``resync_every`` seconds; in between, the local monotonic clock
    advances it (error: half a round trip plus drift, milliseconds). If Redis
    cannot be reached before the first reading, the local clock stands in.
    """

    def __init__(self, r, *, resync_every: float = 30.0):
        self.r = r
        self.resync_every = resync_every
        # (Redis time at the last reading (s), local monotonic time of that reading):
        # one tuple, replaced whole, so threads never see half of an update.
        self._ref: tuple[float, float] | None = None
        self._next_try = 0.0  # after a failed reading, not again before this (monotonic s)

    def now(self) -> float:
        ref = self._ref
        m = time.monotonic()
        if (ref is None or m - ref[1] >= self.resync_every) and m >= self._next_try:
            self._read()
            ref = self._ref
        if ref is None:
            return time.time()
        return ref[0] + (time.monotonic() - ref[1])

    def _read(self) -> None:
        try:
            t0 = time.monotonic()
            sec, usec = self.r.time()
            t1 = time.monotonic()
        except REDIS_DOWN:
            # Keep the last reading (or the local clock) until Redis is back.
            self._next_try = time.monotonic() + 1.0
            return
        self._ref = (sec + usec / 1e6, (t0 + t1) / 2)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
