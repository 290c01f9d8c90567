"""Moving data from an earlier layout, at start (workers/bootstep.py), once.

Before buckets, every state lived in one hash ``{P}:state`` (user ->
``<version><S|U>``) and every remembered event id was a key
``{P}:seen:<eventId>`` with a TTL. :func:`run` moves both into the layouts of
shared/state.py and shared/dedupe.py, a chunk per script call:

1. Take the lease ``{P}:migrate:lease`` (one process migrates; another sees it
   held and goes on: the scripts read the old layout as a fallback meanwhile,
   so nothing is lost or applied twice while the move is under way).
2. The state: HSCAN the old hash from the cursor kept in ``{P}:migrate``
   (field ``state``); each user is written to its bucket (newer wins against a
   state already there) and deleted from the old hash in the same script, which
   also stores the next cursor. Done: the old hash is gone, ``state = done``.
3. The marks: SCAN ``{P}:seen:*`` the same way (field ``seen``); each id is
   remembered in the current window (for one more TTL at least) and its key
   deleted. ``accountLink`` marks stay where they are. Done: ``seen = done``,
   and apply_events.lua stops looking at old marks.

A run killed anywhere resumes from the kept cursor; a chunk is atomic, so each
user and id is moved exactly once.
"""

from __future__ import annotations

import logging
import re
import uuid

import redis

from shared.keys import Keys
from shared.lease import Lease
from shared.scripts import script

DEFAULT_CHUNK = 1000
LEASE_MS = 60_000
DONE = "done"


def _glob_escape(text: str) -> str:
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


def pending(r: redis.Redis, keys: Keys) -> bool:
    """Is anything of the earlier layout left to move?"""
    return any(v != DONE.encode() for v in r.hmget(keys.migrate, "state", "seen"))


def run(r: redis.Redis, keys: Keys, *, now_ms: int, dedupe_ttl: int, chunk: int = DEFAULT_CHUNK,
        max_chunks: int | None = None, log: logging.Logger | None = None) -> str:
    """Move what is left; 'done', 'busy' (another process holds the lease) or 'stopped' (``max_chunks`` reached)."""
    if not pending(r, keys):
        return DONE
    lease = Lease(r, keys.migrate_lease, LEASE_MS, token=uuid.uuid4().hex)
    if not lease.take():
        return "busy"
    chunks, moved = 0, {"state": 0, "seen": 0}
    try:
        for part in ("state", "seen"):
            while True:
                cursor = (r.hget(keys.migrate, part) or b"0").decode()
                if cursor == DONE:
                    break
                if max_chunks is not None and chunks >= max_chunks:
                    return "stopped"
                if not lease.renew():
                    return "busy"
                if part == "state":
                    _, n = script(r, "migrate_state")(keys=[keys.state, keys.migrate, keys.outbox_buckets],
                                                 args=[cursor, chunk])
                else:
                    _, n = script(r, "migrate_seen")(
                        keys=[keys.seen_prefix, keys.dedupe, keys.migrate],
                        args=[cursor, chunk, _glob_escape(keys.seen_prefix) + ":*", now_ms, dedupe_ttl])
                moved[part] += int(n)
                chunks += 1
        if log and any(moved.values()):
            log.info("moved %d states and %d remembered event ids to the compact layout", moved["state"],
                     moved["seen"])
        return DONE
    finally:
        lease.release()
