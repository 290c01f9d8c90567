"""A worker process's presence: its lease and its entry in the worker list.

Every worker process holds the lease ``{P}:worker:<name>`` (renewed by its
engine's heartbeat) and appears in ``{P}:workers`` scored by its last
heartbeat. Others read the lease to tell a live consumer from a dead one
(:meth:`Presence.is_alive`): the stream consumers take a dead process's
entries over at once.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis

from shared.clock import Clock
from shared.keys import Keys
from shared.lease import Lease
from shared.redis_conn import REDIS_DOWN

log = logging.getLogger(__name__)

# The worker lease lapses this long after its last renewal (ms); the engine renews it every heartbeat.
LEASE_MS = 15_000
# {P}:workers entries older than this are dropped (ms).
FORGET_AFTER_MS = 3_600_000


def worker_name() -> str:
    """Unique per process and start: host, pid, and a random part (pids are reused)."""
    return f"{socket.gethostname().split('.')[0]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Presence:
    def __init__(self, r: redis.Redis, keys: Keys, clock: Clock, name: str):
        self.r, self.keys, self.clock, self.name = r, keys, clock, name
        self.lease = Lease(r, keys.worker(name), LEASE_MS)

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def register(self) -> None:
        """Take the worker lease and appear in the worker list. Redis away at start is no reason
        to stop: the heartbeat takes the lease once it answers, and the loops wait for it too."""
        try:
            now = self._now_ms()
            if not self.lease.take():
                raise RuntimeError(f"worker name {self.name} is already in use")
            p = self.r.pipeline(transaction=False)
            p.zadd(self.keys.workers, {self.name: now})
            p.zremrangebyscore(self.keys.workers, "-inf", now - FORGET_AFTER_MS)
            p.execute()
        except REDIS_DOWN as e:
            log.warning("worker %s: Redis unavailable at start (%s); carrying on", self.name, type(e).__name__)

    def renew(self) -> None:
        """Renew the lease (or take it again after an outage) and the worker-list entry."""
        if not self.lease.renew() and not self.lease.take():
            log.warning("worker %s: lease taken by another process", self.name)
        self.r.zadd(self.keys.workers, {self.name: self._now_ms()})

    def leave(self) -> None:
        """Give the lease back and leave the worker list (Redis errors are the caller's)."""
        self.lease.release()
        self.r.zrem(self.keys.workers, self.name)

    def is_alive(self, worker: str) -> bool:
        """Does the worker process ``worker`` hold its lease? (Our own name counts as alive.)"""
        if not worker:
            return False
        return worker == self.name or bool(self.r.exists(self.keys.worker(worker)))
