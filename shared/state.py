"""Per-user subscription state: newest event wins, applied atomically with dedupe.

Both the webhook consumer and the resync write state through :func:`apply`,
so the ordering rule lives in one place (shared/lua/apply_events.lua).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import redis

from shared.events import version_timestamp
from shared.keys import Keys
from shared.scripts import script


@dataclass(frozen=True)
class Change:
    """One event's effect: a state for ``user`` at ``version`` and/or an event to forward."""

    user: str
    version: str
    state: str = ""             # S, U, or '' for none
    event_id: str | None = None  # dedupe key; None = not deduped by id
    forward: str = ""           # JSON of a custom event to forward, '' = none


@dataclass(frozen=True)
class Applied:
    applied: int
    duplicates: int
    stale: int
    unchanged: int
    forwarded: int


def apply(r: redis.Redis | redis.client.Pipeline, keys: Keys, changes: Sequence[Change], *, now_ms: int,
          dedupe_ttl: int, ack_ids: Iterable[str] = (), group: str = "",
          counters: Mapping[str, int] | None = None) -> Applied | None:
    """Apply ``changes`` in order, ack ``ack_ids`` on the webhook stream, bump ``counters``: all or nothing.

    With a pipeline the script is only queued and None is returned; its result
    comes with the pipeline's ``execute()`` (see :func:`applied`).
    """
    seen_keys: list[str] = []
    args: list[str | int] = []
    for c in changes:
        idx = 0
        if c.event_id:
            seen_keys.append(keys.seen(c.event_id))
            idx = 5 + len(seen_keys)
        args += [c.user, c.version, c.state, idx, c.forward]
    acks = list(ack_ids)
    stats = [x for kv in (counters or {}).items() for x in kv]
    res = script(r, "apply_events")(
        keys=[keys.state, keys.outbox_ready, keys.outbox_events, keys.stats, keys.webhooks, *seen_keys],
        args=[now_ms, dedupe_ttl, group, len(changes), len(acks), len(stats) // 2, *args, *acks, *stats],
    )
    if isinstance(r, redis.client.Pipeline):
        return None
    return applied(res)


def applied(res) -> Applied:
    """The script's reply as an Applied."""
    return Applied(*(int(x) for x in res))


def get(r: redis.Redis, keys: Keys, user: str) -> tuple[str, str] | None:
    """(version, state) of ``user``, or None."""
    v = r.hget(keys.state, user)
    if v is None:
        return None
    v = v.decode()
    return v[:-1], v[-1]


def count(r: redis.Redis, keys: Keys) -> int:
    """How many users linesync holds a state for."""
    return int(r.hlen(keys.state))


def scan(r: redis.Redis, keys: Keys, cursor: str = "0", *, count: int = 1000) -> tuple[str, list[tuple[str, str, str]]]:
    """One step over every held state: (next cursor, [(user, version, state), ...]).

    Start with cursor "0"; a returned "0" means the walk is done. Like HSCAN,
    a user present for the whole walk is returned at least once; the cursor
    is an opaque string the caller keeps (a resync run stores it).
    """
    nxt, entries = r.hscan(keys.state, int(cursor or 0), count=count)
    out = []
    for user, value in entries.items():
        user = user.decode() if isinstance(user, bytes) else user
        value = value.decode() if isinstance(value, bytes) else value
        out.append((user, value[:-1], value[-1]))
    return str(int(nxt)), out


def effective_ms(version: str) -> int:
    """The effective time (epoch ms) a version was stamped with: the event's, or a resync run's start."""
    return version_timestamp(version)


def mark_dirty(r: redis.Redis, keys: Keys, users: Iterable[str], *, now_ms: int) -> int:
    """Queue ``users`` for (re)sending their current state (links, DLQ replay)."""
    users = list(users)
    if not users:
        return 0
    return r.zadd(keys.outbox_ready, {u: now_ms for u in users}, nx=True)
