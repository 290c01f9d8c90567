"""Answer 503 before Redis is full: the high-memory watermark.

With ``maxmemory-policy noeviction`` a full Redis refuses every write, the
workers' included, and they need to write a little to drain the queue (acks,
state, outbox). So the ingress stops queueing a little earlier: while Redis's
``used_memory`` is above ``INGRESS_MEMORY_HIGH_WATERMARK`` (default 0.9) of its
``maxmemory``, a valid webhook gets ``503`` (LINE redelivers) and nothing is
stored; the workers, which free more than they write, bring memory back down
and the ingress takes webhooks again. ``0``, or a Redis without ``maxmemory``,
turns the check off.

Cheap on the hot path: each process reads ``INFO memory`` at most once per
REFRESH_SECONDS, lazily, in whichever request thread first finds the figure
stale (the others keep using the cached answer meanwhile; no lock is waited on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from shared.errors import StoreUnavailable
from shared.redis_conn import REDIS_DOWN

log = logging.getLogger(__name__)

# How often one process reads Redis's memory figures (at most).
REFRESH_SECONDS = 1.0


def over_watermark(used: int, maxmemory: int, watermark: float) -> bool:
    """Whether ``used`` bytes is above ``watermark`` of ``maxmemory`` (never, when either is 0)."""
    return bool(watermark) and maxmemory > 0 and used > watermark * maxmemory


class MemoryWatermark:
    """Redis's memory against the watermark, refreshed at most once per ``refresh`` seconds."""

    def __init__(self, watermark: float, *, refresh: float = REFRESH_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.watermark = watermark
        self.refresh = refresh
        self.clock = clock
        self.used = 0
        self.maxmemory = 0
        self._over = False
        self._stale_at = 0.0  # the cached answer is stale from then on (clock time)
        self._lock = threading.Lock()

    def over(self, r: redis.Redis) -> bool:
        """True while Redis's memory is above the watermark (as of the last refresh).

        Reads ``INFO memory`` through ``r`` when the cached figure is stale and no
        other thread is already reading it. Raises StoreUnavailable when that read
        fails (Redis down or hung): the caller answers 503 at once rather than try
        a write that would fail the same way.
        """
        if not self.watermark or self.clock() < self._stale_at or not self._lock.acquire(blocking=False):
            return self._over
        try:
            now = self.clock()
            if now >= self._stale_at:  # not refreshed by another thread meanwhile
                self._stale_at = now + self.refresh
                self._read(r)
        finally:
            self._lock.release()
        return self._over

    def _read(self, r: redis.Redis) -> None:
        try:
            try:
                info = r.info("memory")
            except redis.ConnectionError:  # a connection Redis dropped (restart, idle timeout): once more
                info = r.info("memory")
        except (REDIS_DOWN + (redis.RedisError,)) as e:
            raise StoreUnavailable("could not read Redis's memory figures") from e
        self.used = int(info.get("used_memory", 0) or 0)
        self.maxmemory = int(info.get("maxmemory", 0) or 0)
        over = over_watermark(self.used, self.maxmemory, self.watermark)
        if over and not self._over:
            log.warning("Redis uses %d of %d bytes (above the %.0f%% watermark, INGRESS_MEMORY_HIGH_WATERMARK): "
                        "webhooks get 503 until the workers drain it", self.used, self.maxmemory,
                        self.watermark * 100)
        elif self._over and not over:
            log.warning("Redis memory back under the watermark (%d of %d bytes): taking webhooks again",
                        self.used, self.maxmemory)
        self._over = over
