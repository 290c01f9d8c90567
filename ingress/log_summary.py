"""A log line per occurrence, at most once per interval: counts in between, summed in the next line.

Unsigned requests to ``/line/events`` are anyone's to send: a line for each
would let any client fill the log (and cost a write per request). Each is
counted in a metric (``linesync_ingress_requests_total{outcome="unauthorized"}``);
the log gets one summary line at most every INTERVAL seconds, with the counts
since the previous one. The first occurrence is logged at once. No timer: a
summary is written when an occurrence finds the interval over, so counts after
the last line wait for the next occurrence (the metric has them meanwhile).

Kept in memory, per process, thread-safe; the clock is a parameter.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

# At most one summary line per this many seconds.
INTERVAL = 60.0


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]  # occurrences by kind since the previous summary (or the start)
    seconds: float          # how long that was

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class LogSummary:
    """``note(kind)`` counts an occurrence and returns a Summary when one is due, else None."""

    def __init__(self, *, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._counts: Counter[str] = Counter()
        self._since: float | None = None  # start of the period being counted
        self._next = float("-inf")        # no summary before this
        self._lock = threading.Lock()

    def note(self, kind: str) -> Summary | None:
        with self._lock:
            now = self.clock()
            if self._since is None:
                self._since = now
            self._counts[kind] += 1
            if now < self._next:
                return None
            summary = Summary(dict(self._counts), now - self._since)
            self._counts.clear()
            self._since = now
            self._next = now + self.interval
            return summary
