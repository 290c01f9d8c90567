"""Repeated bad tokens on the admin API: after MAX_FAILURES 401s from one remote
address within WINDOW seconds, that address's bad tokens get 429 for BLOCK
seconds, without a log line each (ingress/admin.py).

Only failures are counted and refused: the right token always passes, checked
first. An address is not a person (a NAT, a bastion host, the proxy every
caller shares), and a script retrying a stale token, or someone guessing, from
the operator's address must not lock the operator out. So this does not slow
guessing (nothing can, without also refusing the right token on that address):
the token's length does that, and a 32-byte random one cannot be guessed. What
the throttle does is flag the caller once (a WARNING at the block) and keep its
bad tokens from filling the log.

Kept in memory, per process: each gunicorn worker counts on its own, so an
address may get up to ``workers`` × MAX_FAILURES tries per window before every
worker blocks it; plenty to stop guessing a 32-byte token, and nothing to share
or clean up in Redis. The remote address is the TCP peer (``REMOTE_ADDR``),
never a forwarded header a client could set; behind a proxy every caller is the
proxy, so keep the admin bind off proxies (it is private anyway). At most
MAX_TRACKED addresses are remembered (the oldest are forgotten first).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# 401s from one address within WINDOW seconds before it is blocked...
MAX_FAILURES = 10
WINDOW = 60.0
# ...for this long.
BLOCK = 60.0
# Addresses remembered at most (memory stays bounded whatever the callers).
MAX_TRACKED = 10_000


class FailureLimiter:
    """Counts failures per caller in a sliding window; blocks a caller that reaches the limit."""

    def __init__(self, *, max_failures: int = MAX_FAILURES, window: float = WINDOW, block: float = BLOCK,
                 max_tracked: int = MAX_TRACKED, clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window = window
        self.block = block
        self.max_tracked = max_tracked
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._blocked: OrderedDict[str, float] = OrderedDict()  # caller -> blocked until
        self._lock = threading.Lock()

    def retry_after(self, who: str) -> float:
        """Seconds until ``who`` may try again (0: not blocked)."""
        with self._lock:
            until = self._blocked.get(who)
            if until is None:
                return 0.0
            left = until - self.clock()
            if left <= 0:
                del self._blocked[who]
                return 0.0
            return left

    def failed(self, who: str) -> int:
        """Record a failure; return how many ``who`` had within the window (a block starts at the limit)."""
        with self._lock:
            now = self.clock()
            times = self._failures.pop(who, None) or deque()
            while times and times[0] <= now - self.window:
                times.popleft()
            times.append(now)
            count = len(times)
            if count >= self.max_failures:
                self._blocked.pop(who, None)
                self._blocked[who] = now + self.block
                _bound(self._blocked, self.max_tracked)
            else:
                self._failures[who] = times
                _bound(self._failures, self.max_tracked)
            return count


def _bound(d: OrderedDict, size: int) -> None:
    while len(d) > size:
        d.popitem(last=False)
