"""Waking the sender that watches the outbox when its process's consumers filled a batch.

While the outbox holds less than a batch, one sender per process (the watcher,
workers/deliver.py) looks again every 50 ms and the others wait for it. Under
load a full batch would wait out that poll; instead the consumers of the same
process report how many profiles each applied batch made dirty (:meth:`added`),
every claim corrects the estimate (:meth:`claimed`), and at a batch's worth the
resting watcher is woken (:meth:`rest`). Work from other processes' consumers is
still found by the poll.
"""

from __future__ import annotations

import threading
import time

from shared.batch import Batch
from shared.outbox import Wait

# A resting watcher looks at the engine's stop flag at least this often (s).
STOP_CHECK = 0.1


class Wakeup:
    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self._fresh = 0  # profiles made dirty here, less those claimed since: the outbox's size, estimated
        self._lock = threading.Lock()
        self._work = threading.Event()

    def added(self, profiles: int) -> None:
        """This process's consumers made ``profiles`` dirty (called after each applied batch)."""
        with self._lock:
            self._fresh += profiles
            if self._fresh >= self.batch_size:
                self._work.set()

    def claimed(self, got: Batch | Wait) -> None:
        """Correct the estimate by what a claim found: a batch takes its profiles out; an empty
        outbox holds none; one still filling holds less than a batch (guessed half: at most two
        looks per batch's worth, whatever the consumers' pace)."""
        with self._lock:
            if isinstance(got, Batch):
                self._fresh = max(0, self._fresh - len(got.items))
            elif got.why == "empty":
                self._fresh = 0
            else:
                self._fresh = min(self._fresh, self.batch_size // 2)

    def rest(self, seconds: float, stop: threading.Event) -> None:
        """The watcher's pause: ``seconds``, cut short by a batch's worth of work or by ``stop``."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._work.wait(min(left, STOP_CHECK)):
                self._work.clear()
                return
