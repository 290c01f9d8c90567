"""A process's heartbeat, as ``GET /healthz`` on its metrics port reports it.

The worker's engine beats after every pass of its heartbeat loop (every 5 s),
beat after every scheduler tick (every 5 s at most) and while it waits for the
schedule lock as a standby replica. A pass counts whether Redis answered or
not: the probe says "this process is not stuck", and a Redis outage, which
the processes ride out, is no reason to restart them (the alerts cover it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A heartbeat older than this is stale: /healthz answers 503 (s). Six missed 5 s beats.
STALE_AFTER = 30.0


class Heartbeat:
    def __init__(self, *, stale_after: float = STALE_AFTER, monotonic: Callable[[], float] = time.monotonic):
        self.stale_after, self.monotonic = stale_after, monotonic
        self._at = monotonic()  # a process that just started counts as fresh
        self._lock = threading.Lock()
        self.state = "starting"

    def beat(self, state: str = "ok") -> None:
        with self._lock:
            self._at, self.state = self.monotonic(), state

    def age(self) -> float:
        with self._lock:
            return self.monotonic() - self._at

    def report(self) -> tuple[bool, dict]:
        """``(fresh, body)`` for /healthz: 200 with the heartbeat's age while fresh, 503 otherwise."""
        age = self.age()
        fresh = age <= self.stale_after
        return fresh, {"status": self.state if fresh else "stale", "heartbeat_age_s": round(age, 1),
                       "stale_after_s": self.stale_after}
