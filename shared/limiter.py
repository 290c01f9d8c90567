"""One cluster-wide gate per Braze endpoint family: rate limit, pauses, shared backoff.

All state lives in Redis (shared/lua/limiter.lua), so every worker process on
every host sees the same limit. The arithmetic that does not need Redis
(intervals, what a response means for the gate) is pure and tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from shared.backoff import compute_backoff
from shared.config import RateLimit
from shared.keys import Keys
from shared.scripts import script

TRACK = "track"        # /users/track
IDENTIFY = "identify"  # /users/identify, /users/merge (Braze's shared budget)

# How long the worker that probes a recovering endpoint may take (ms).
DEFAULT_PROBE_LEASE_MS = 30_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    wait_ms: int
    why: str = ""
    probe: bool = False


def gcra_params(limit: RateLimit) -> tuple[float, float]:
    """(emission interval ms, burst tolerance ms) for a limit.

    Tolerance 0: requests are spaced evenly, so no window of ``period`` — however
    it is aligned — sees more than ``requests`` of them.
    """
    return limit.period * 1000.0 / limit.requests, 0.0


class Limiter:
    def __init__(self, r: redis.Redis, keys: Keys, name: str, limit: RateLimit, *,
                 retry_base: float = 1.0, retry_max: float = 600.0,
                 probe_lease_ms: int = DEFAULT_PROBE_LEASE_MS):
        self.r, self.keys, self.name, self.limit = r, keys, name, limit
        self.retry_base, self.retry_max = retry_base, retry_max
        self.probe_lease_ms = probe_lease_ms
        self._interval, self._tolerance = gcra_params(limit)

    def acquire(self, now_ms: int | None = None) -> Decision:
        """Take one request's worth of the shared budget, or say how long to wait."""
        allowed, wait, why, probe = script(self.r, "limiter")(
            keys=[self.keys.limit(self.name), self.keys.pause(self.name), self.keys.breaker(self.name),
                  self.keys.breaker_probe(self.name)],
            args=["" if now_ms is None else now_ms, repr(self._interval), repr(self._tolerance),
                  self.probe_lease_ms],
        )
        return Decision(bool(int(allowed)), int(wait), why.decode() if isinstance(why, bytes) else why,
                        bool(int(probe)))

    def pause(self, until_ms: int, reason: str, kind: str) -> int:
        """Every worker waits until ``until_ms`` (never shortens an existing pause)."""
        return int(script(self.r, "pause")(keys=[self.keys.pause(self.name)], args=[until_ms, reason, kind]))

    def failed(self, now_ms: int) -> tuple[int, int]:
        """A retryable failure: open the shared breaker for an exponentially growing, jittered time.

        Returns (streak, open_until ms).
        """
        seen = int(self.r.hget(self.keys.breaker(self.name), "streak") or 0)
        delay_ms = int(compute_backoff(seen + 1, base=self.retry_base, max_backoff=self.retry_max) * 1000)
        streak, open_until = script(self.r, "breaker_fail")(
            keys=[self.keys.breaker(self.name), self.keys.breaker_probe(self.name)],
            args=[now_ms, seen, delay_ms])
        return int(streak), int(open_until)

    def succeeded(self) -> None:
        """Close the breaker (call after a successful probe)."""
        self.r.delete(self.keys.breaker(self.name), self.keys.breaker_probe(self.name))

    def state(self) -> dict:
        p = self.r.pipeline(transaction=False)
        p.hgetall(self.keys.pause(self.name))
        p.hgetall(self.keys.breaker(self.name))
        pause, breaker = p.execute()
        dec = {k.decode(): v.decode() for k, v in pause.items()}
        brk = {k.decode(): v.decode() for k, v in breaker.items()}
        return {"limit": str(self.limit), "pause": dec, "breaker": brk}
