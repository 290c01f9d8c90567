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

# A burst of requests // BURST_DIVISOR may go at once (see gcra_params).
BURST_DIVISOR = 32
# How long the worker that probes a recovering endpoint may take (ms).
DEFAULT_PROBE_LEASE_MS = 30_000
# While the endpoint keeps failing, probe it at least this often (s): delivery resumes
# this soon after an outage ends, however long it lasted (batches keep their own backoff).
DEFAULT_PROBE_MAX = 15.0
# No pause lasts longer than this (s), whatever Braze's X-RateLimit-Reset said.
DEFAULT_PAUSE_MAX = 3600.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    wait_ms: int
    why: str = ""
    probe: bool = False


def gcra_params(limit: RateLimit) -> tuple[float, float]:
    """(emission interval ms, burst tolerance ms) for a limit.

    A burst of ``B = requests // BURST_DIVISOR`` may go at once (senders that
    finish together need not queue behind each other), and the rest is spaced
    ``period / (requests - B)`` apart. A GCRA with interval ``T`` and tolerance
    ``B·T`` admits at most ``(P + B·T) / T = requests`` requests in any window of
    length ``P = period``, however aligned: the limit is never exceeded, and the
    sustained rate is ``B / requests`` (3 %) below it.
    """
    burst = limit.requests // BURST_DIVISOR
    interval = limit.period * 1000.0 / (limit.requests - burst)
    return interval, burst * interval


class Limiter:
    def __init__(self, r: redis.Redis, keys: Keys, name: str, limit: RateLimit, *,
                 retry_base: float = 1.0, probe_max: float = DEFAULT_PROBE_MAX,
                 pause_max: float = DEFAULT_PAUSE_MAX, probe_lease_ms: int = DEFAULT_PROBE_LEASE_MS):
        self.r, self.keys, self.name, self.limit = r, keys, name, limit
        self.retry_base, self.probe_max, self.pause_max = retry_base, probe_max, pause_max
        self.probe_lease_ms = probe_lease_ms
        self._interval, self._tolerance = gcra_params(limit)

    def acquire(self, now_ms: int | None = None, *, reserve_ms: int = 0) -> Decision:
        """Take one request's worth of the shared budget, or say how long to wait.

        With ``reserve_ms``, a slot at most that far off is reserved: the decision is
        allowed with ``wait_ms`` > 0, and the caller must wait that long before sending.
        """
        return self._call(now_ms, "take", reserve_ms)

    def peek(self, now_ms: int | None = None) -> Decision:
        """May a sender go ahead (no pause, breaker closed or free to probe)? Takes nothing.

        ``probe`` is true when the breaker is half-open and nobody probes yet.
        """
        return self._call(now_ms, "peek")

    def _call(self, now_ms: int | None, mode: str, reserve_ms: int = 0) -> Decision:
        allowed, wait, why, probe = script(self.r, "limiter")(
            keys=[self.keys.limit(self.name), self.keys.pause(self.name), self.keys.breaker(self.name),
                  self.keys.breaker_probe(self.name)],
            args=["" if now_ms is None else now_ms, repr(self._interval), repr(self._tolerance),
                  self.probe_lease_ms, mode, reserve_ms],
        )
        return Decision(bool(int(allowed)), int(wait), why.decode() if isinstance(why, bytes) else why,
                        bool(int(probe)))

    def pause(self, until_ms: int, reason: str, kind: str, *, now_ms: int) -> int:
        """Every worker waits until ``until_ms``, at most ``pause_max`` from now.

        Never shortens an existing pause (except one past the cap). Returns the pause's end (ms).
        """
        latest = now_ms + int(self.pause_max * 1000)
        return int(script(self.r, "pause")(keys=[self.keys.pause(self.name)],
                                           args=[until_ms, reason, kind, now_ms, latest]))

    def clear_pause(self) -> bool:
        """Lift the pause (an operator's command). Returns whether there was one."""
        return bool(self.r.delete(self.keys.pause(self.name)))

    def failed(self, now_ms: int) -> tuple[int, int]:
        """A retryable failure: open the shared breaker for a growing, jittered time.

        The wait grows from ``retry_base`` and stops at ``probe_max``: while the
        endpoint is down one request probes it at least that often, so delivery
        resumes soon after it recovers. Returns (streak, open_until ms).
        """
        seen = int(self.r.hget(self.keys.breaker(self.name), "streak") or 0)
        delay_ms = int(compute_backoff(seen + 1, base=self.retry_base, max_backoff=self.probe_max) * 1000)
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
