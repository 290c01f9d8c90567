"""Pumps: the long-lived loops (consume, deliver) run as short, self-renewing Celery tasks.

A pump task for ``(kind, slot)`` takes the slot's lease, runs its step
function for up to ``RUN_SECONDS`` while renewing the lease, then releases it
and queues its own successor. ``kick`` (beat, every few seconds, and at worker
start) queues a pump for every slot that has neither a live lease nor a
queued wake-up, so a slot whose worker was SIGKILLed is back within the lease
time. The Celery messages are only wake-ups: losing or duplicating one is
harmless, since the lease admits one loop per slot and every step is
idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from shared.clock import Clock
from shared.keys import Keys
from shared.lease import Lease
from shared.redis_conn import REDIS_DOWN

log = logging.getLogger(__name__)

CONSUME = "consume"
DELIVER = "deliver"
IDENTITY = "identity"   # /users/identify and /users/merge
KINDS = (CONSUME, DELIVER, IDENTITY)

# One pump task runs this long before handing over to its successor (s). Short, so
# a warm shutdown (which waits for running tasks) takes seconds; a hand-over costs
# one broker message.
RUN_SECONDS = 3.0
# A slot whose holder stopped renewing is free again after this (ms). It is about
# how many loops run, not correctness: two loops in one slot are safe.
LEASE_MS = 8_000
# A queued wake-up is assumed lost after this long (s) (e.g. prefetched by a
# worker that was killed); a duplicate wake-up finds the slot busy and ends.
QUEUED_TTL = 10
# After an unexpected error, wait this long before the next step (s).
ERROR_SLEEP = 1.0


def run(lease: Lease, step: Callable[[], float], clock: Clock, *, run_seconds: float = RUN_SECONDS,
        stop: Callable[[], bool] = lambda: False) -> str:
    """Run ``step`` in a loop while holding ``lease``. Returns 'busy', 'lost', 'stopped' or 'done'."""
    if not lease.take():
        return "busy"
    outcome = "done"
    try:
        deadline = clock.now() + run_seconds
        while clock.now() < deadline:
            if stop():
                outcome = "stopped"
                break
            try:
                pause = step()
            except REDIS_DOWN as e:
                log.warning("redis unavailable in pump step: %s", type(e).__name__)
                pause = ERROR_SLEEP
            except Exception:
                log.exception("pump step failed")
                pause = ERROR_SLEEP
            try:
                if not lease.renew():
                    return "lost"
            except REDIS_DOWN:
                pause = ERROR_SLEEP
            if pause:
                clock.sleep(pause)
        return outcome
    finally:
        try:
            lease.release()
        except REDIS_DOWN:
            pass


def slots_to_wake(r: redis.Redis, keys: Keys, slots: dict[str, int]) -> list[tuple[str, int]]:
    """Slots with no live lease and no queued wake-up; marks them queued."""
    out = []
    for kind, n in slots.items():
        for slot in range(n):
            if r.exists(keys.pump_lease(kind, slot)):
                continue
            if r.set(keys.pump_queued(kind, slot), "1", nx=True, ex=QUEUED_TTL):
                out.append((kind, slot))
    return out


def mark_queued(r: redis.Redis, keys: Keys, kind: str, slot: int) -> None:
    r.set(keys.pump_queued(kind, slot), "1", ex=QUEUED_TTL)


def clear_queued(r: redis.Redis, keys: Keys, kind: str, slot: int) -> None:
    r.delete(keys.pump_queued(kind, slot))
