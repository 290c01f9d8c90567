"""Group commit: the bodies of concurrent requests go to Redis in one pipelined round trip.

Each request thread hands its body to the process's writer thread and waits
for *its own* entry id; the writer takes everything waiting, sends one
pipeline of XADDs, and answers each request with its id or its error. A
request is still answered 200 only once its body is stored, but under load one
round trip (and one pair of syscalls on each side, the bulk of the cost on a
busy machine) serves many requests. With one request at a time it costs a
thread hand-off more than a direct XADD.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import redis

from shared.errors import StoreUnavailable
from shared.keys import Keys
from shared.redis_conn import REDIS_DOWN
from shared.webhook_queue import entry_fields

# Most bodies in one pipeline.
MAX_BATCH = 128
# A request gives up waiting after this long (s): past the Redis socket timeout,
# well inside LINE's 2 s.
WAIT_SECONDS = 1.5


class GroupCommitter:
    def __init__(self, r: redis.Redis, keys: Keys):
        self.r, self.keys = r, keys
        self._queue: queue.SimpleQueue[tuple[bytes, Future]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def enqueue(self, body: bytes) -> str:
        """Store ``body`` in the webhook stream; its entry id. Raises StoreUnavailable."""
        self._ensure_writer()
        fut: Future = Future()
        self._queue.put((body, fut))
        try:
            return fut.result(timeout=WAIT_SECONDS)
        except FutureTimeout:
            # The write may still land; LINE redelivers and the workers dedupe.
            raise StoreUnavailable("Redis did not confirm the write in time") from None

    def _ensure_writer(self) -> None:
        # Started lazily, and again after a fork: gunicorn forks workers after import.
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():
                self._queue = queue.SimpleQueue()
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="linesync-group-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        q = self._queue
        while True:
            batch = [q.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[tuple[bytes, Future]]) -> None:
        try:
            p = self.r.pipeline(transaction=False)
            for body, _ in batch:
                p.xadd(self.keys.webhooks, entry_fields(body))
            ids = p.execute(raise_on_error=False)
        except (REDIS_DOWN + (redis.RedisError,)) as e:
            err = StoreUnavailable("could not store webhook body")
            err.__cause__ = e
            for _, fut in batch:
                fut.set_exception(err)
            return
        for (_, fut), entry_id in zip(batch, ids):
            if isinstance(entry_id, Exception):  # e.g. OOM for this command
                err = StoreUnavailable("could not store webhook body")
                err.__cause__ = entry_id
                fut.set_exception(err)
            else:
                fut.set_result(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
