"""The worker's periodic INFO line: what it delivered to Braze since the last one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# How often a summary of what was delivered is logged at INFO, when anything was (s).
SUMMARY_EVERY = 60.0


class DeliverySummary:
    """``tick()`` logs one line every :data:`SUMMARY_EVERY` seconds in which anything was delivered.

    ``counts()`` returns the deliverer's running ``(batches, objects)`` totals.
    """

    def __init__(self, counts: Callable[[], tuple[int, int]], *, every: float = SUMMARY_EVERY,
                 monotonic: Callable[[], float] = time.monotonic):
        self.counts, self.every, self.monotonic = counts, every, monotonic
        self._since, self._last = monotonic(), counts()

    def tick(self) -> None:
        now = self.monotonic()
        if now - self._since < self.every:
            return
        counts = self.counts()
        batches, objects = counts[0] - self._last[0], counts[1] - self._last[1]
        secs = now - self._since
        if batches:
            log.info("delivered %d objects to Braze in %d requests in the last %.0f s (%.0f objects/s)",
                     objects, batches, secs, objects / secs)
        self._since, self._last = now, counts
