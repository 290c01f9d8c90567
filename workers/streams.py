"""Taking over a dead worker's share of a Redis stream (consumer group ``workers``).

Stream consumers are named ``<worker>/<loop>`` (workers/engine.py), where
``<worker>`` holds the lease ``{P}:worker:<worker>`` while its process lives.
A consumer whose worker has no lease is dead: its pending entries are claimed
by a live consumer at once (no idle timeout to wait out), and the consumer is
removed from the group once it holds nothing, so the group does not collect a
consumer per restart. Entries idle longer than a threshold in a *live*
consumer (a hung process) are still taken over by ``XAUTOCLAIM`` in the caller.
"""

from __future__ import annotations

from collections.abc import Callable

import redis

from shared.keys import STREAM_GROUP

# Entries claimed per XCLAIM call.
CLAIM_CHUNK = 200
# Claim only entries idle at least this long (ms): when two live consumers take over
# the same dead one at once, the second finds the entries just claimed and leaves them.
CLAIM_MIN_IDLE_MS = 1000


def worker_of(consumer: str) -> str:
    """The worker process a consumer belongs to ('' for names from before workers had leases)."""
    return consumer.rpartition("/")[0]


def dead_consumers(r: redis.Redis, stream: str, *, me: str, is_alive: Callable[[str], bool]) -> list[tuple[str, int]]:
    """(name, pending) of the group's consumers whose worker process is gone."""
    out = []
    for c in r.xinfo_consumers(stream, STREAM_GROUP):
        name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
        if name == me:
            continue
        if is_alive(worker_of(name)):
            continue
        out.append((name, int(c["pending"])))
    return out


def take_over(r: redis.Redis, stream: str, *, me: str, is_alive: Callable[[str], bool],
              handle: Callable[[list], None] = lambda entries: None) -> int:
    """Claim every pending entry of dead consumers for ``me``, hand them to ``handle``, drop those consumers.

    ``handle`` receives ``[(id, fields), ...]`` as XCLAIM returns them (fields
    None for an entry deleted meanwhile); the entries are ``me``'s pending ones
    afterwards, with their delivery count raised by one. Returns how many were claimed.
    """
    moved = 0
    for name, pending in dead_consumers(r, stream, me=me, is_alive=is_alive):
        while pending:
            rows = r.xpending_range(stream, STREAM_GROUP, min="-", max="+", count=CLAIM_CHUNK, consumername=name)
            if not rows:
                break
            ids = [row["message_id"] for row in rows]
            claimed = r.xclaim(stream, STREAM_GROUP, me, min_idle_time=CLAIM_MIN_IDLE_MS, message_ids=ids)
            moved += len(claimed)
            handle(claimed)
            if len(rows) < CLAIM_CHUNK:
                break
        # Only a consumer with nothing pending is removed (DELCONSUMER drops pending entries).
        if not r.xpending_range(stream, STREAM_GROUP, min="-", max="+", count=1, consumername=name):
            r.xgroup_delconsumer(stream, STREAM_GROUP, name)
    return moved
