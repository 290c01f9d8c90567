"""The coalescing outbox and the batches being delivered from it.

The stored batch value and its items are shared/batch.py's (the one codec).
Lifecycle of a batch (shared/lua/claim_batch.lua, renew_batch.lua, reschedule_batch.lua,
finish_batch.lua):

0. *dirty*: a user whose state a resync changed carries a dirty flag in its
   stored value (shared/state.py) and its state bucket is listed in
   ``outbox:buckets`` (scored by when it first became dirty): the outbox costs
   no memory per user. A user a webhook event changed (events are sparse: a
   claim reads its value, not a bucket for one dirty user) and a user without
   a packed state (an id of another form, a link or a DLQ replay of a user
   with no state yet) are listed alone in ``outbox:ready`` instead.
1. *claim*: the oldest dirty users not already in flight are taken (from both
   lists, merged by time; a bucket is read whole), with their newest state
   read at that moment (so waiting updates are coalesced), into a batch stored
   in Redis before anything is sent; their dirty flags are cleared. Each user is marked in flight
   with the batch id (a LINE user by its 16 bytes in ``outbox:flying``, an id of
   another form in ``outbox:inflight``): a user is in at most one batch at a time,
   so Braze can't receive a newer state before an older one.
2. The batch has a lease: an expiry (``batches:due``) and an owner
   (``batches:owner``), the token of the claim that holds it. A sender that dies
   (or stalls) leaves it overdue; the next claim takes overdue batches first,
   becomes their owner and sends them again (at-least-once, same states). Only
   the owner may :func:`renew`, :func:`reschedule` or :func:`finish` a batch: a
   sender that outlived its lease finds it taken and leaves it alone.
3. *reschedule*: a retry or a pause sets the batch's due time later; its users
   stay in flight. A batch waiting after a failure is also listed in
   ``batches:retry``: when Braze answers again, :func:`release_retries` makes
   them all due at once (their attempt counts kept), and a worker probing a
   failing Braze may take the longest-waiting one early (``claim(probe=True)``).
4. *finish*: on success (or dead-lettering) the batch is deleted, its users
   released, dead letters written: one atomic script.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from shared import batch as codec
from shared import rates, state
from shared.batch import Batch, Item  # noqa: F401 (re-exported: the outbox's batches)
from shared.keys import Keys
from shared.scripts import script

# A sender holds a batch this long before another may take it over (ms), unless it
# says otherwise: the workers derive theirs from the Braze timeout (workers/deliver.py
# lease_ms, 30 s by default) and renew it before each request.
DEFAULT_LEASE_MS = 60_000
# Batches open at once, cluster-wide (sending or waiting to retry): a bound on the
# batches hash, well above what the workers keep in flight (64 per process by
# default). Senders stop claiming new batches while Braze is paused or failing
# (workers/sending.py), so during an outage dirty users wait in the outbox, coalescing.
DEFAULT_MAX_OPEN = 4096
# When Braze recovers, batches waiting to retry become due this far apart (ms).
RELEASE_SPACING_MS = 5
# Who claims when the caller names nobody (tools, tests): this host and process.
DEFAULT_OWNER = f"{socket.gethostname().split('.')[0]}:{os.getpid()}"


@dataclass(frozen=True)
class Wait:
    ms: int
    why: str  # 'delay' (partial batch not due yet), 'empty', 'full' (too many open batches)


def claim(r: redis.Redis, keys: Keys, *, now_ms: int, max_objects: int, flush_delay_ms: int,
          lease_ms: int = DEFAULT_LEASE_MS, max_open: int = DEFAULT_MAX_OPEN, probe: bool = False,
          owner: str = DEFAULT_OWNER) -> Batch | Wait:
    """Take the next batch for ``owner`` (a sender's name), leased until ``now_ms + lease_ms``."""
    k, a = _claim_call(keys, now_ms=now_ms, max_objects=max_objects, flush_delay_ms=flush_delay_ms,
                       lease_ms=lease_ms, max_open=max_open, probe=probe, owner=owner)
    return _claimed(script(r, "claim_batch")(keys=k, args=a), a)


def _claim_call(keys: Keys, *, now_ms: int, max_objects: int, flush_delay_ms: int,
                lease_ms: int = DEFAULT_LEASE_MS, max_open: int = DEFAULT_MAX_OPEN,
                probe: bool = False, owner: str = DEFAULT_OWNER) -> tuple[list, list]:
    # Each claim's token is unique: two threads (or two claims) of one sender never pass for each other.
    token = f"{owner}/{uuid.uuid4().hex[:12]}"
    return ([keys.outbox_ready, keys.state, keys.outbox_inflight, keys.batches, keys.batches_due,
             keys.links_line, keys.outbox_events, keys.batches_retry, keys.batches_owner, keys.outbox_buckets,
             keys.outbox_flying],
            [now_ms, max_objects, flush_delay_ms, uuid.uuid4().hex, lease_ms, max_open, "1" if probe else "",
             token])


def _claimed(res, args: list) -> Batch | Wait:
    kind = res[0].decode()
    if kind in ("old", "new"):
        batch = codec.decode(res[2], taken_over=kind == "old")
        batch.owner, batch.lease_until = args[7], int(args[0]) + int(args[4])
        return batch
    if kind == "wait":
        return Wait(int(res[1]), "delay")
    return Wait(0, kind)


def finish(r: redis.Redis, keys: Keys, batch: Batch, *, delivered: int,
           dead: Sequence[tuple[str, str, dict]] = (), now_ms: int = 0) -> bool:
    """Release the batch's users and delete it; ``dead`` = (kind, reason, payload) dead letters.

    ``delivered`` objects are also counted in the ``delivered`` rate bucket of ``now_ms`` (shared/rates.py).
    False (and nothing done) if this claim no longer holds the batch: finished, or taken over.
    """
    k, a = _finish_call(keys, batch, delivered=delivered, dead=dead, now_ms=now_ms)
    return bool(script(r, "finish_batch")(keys=k, args=a))


def _finish_call(keys: Keys, batch: Batch, *, delivered: int, dead: Sequence[tuple[str, str, dict]],
                 now_ms: int) -> tuple[list, list]:
    fields, ids = codec.in_flight(batch)
    args: list[str | int | bytes] = [batch.id, batch.owner, delivered, len(dead), rates.TTL, len(fields)]
    for kind, reason, payload in dead:
        args += [kind, reason, json.dumps(payload)]
    args += fields
    args += ids
    return ([keys.outbox_inflight, keys.batches, keys.batches_due, keys.dlq, keys.stats, keys.batches_retry,
             keys.batches_owner, rates.key(keys, rates.DELIVERED, now_ms / 1000), keys.outbox_flying], args)


def finish_and_claim(r: redis.Redis, keys: Keys, batch: Batch, *, delivered: int,
                     dead: Sequence[tuple[str, str, dict]] = (), now_ms: int, max_objects: int,
                     flush_delay_ms: int, lease_ms: int = DEFAULT_LEASE_MS,
                     owner: str = DEFAULT_OWNER) -> tuple[bool, Batch | Wait]:
    """:func:`finish` this batch and :func:`claim` the next, in one round trip.

    Returns (whether the batch was finished here, as :func:`finish` says; the next batch or a Wait).

    The two scripts stay separate (each atomic on its own); they only share a
    pipeline. A script Redis no longer has (SCRIPT FLUSH, a restart without
    persistence of the cache) is loaded and run again on its own.
    """
    fk, fa = _finish_call(keys, batch, delivered=delivered, dead=dead, now_ms=now_ms)
    ck, ca = _claim_call(keys, now_ms=now_ms, max_objects=max_objects, flush_delay_ms=flush_delay_ms,
                         lease_ms=lease_ms, owner=owner)
    fin, cla = script(r, "finish_batch"), script(r, "claim_batch")
    p = r.pipeline(transaction=False)
    p.evalsha(fin.sha, len(fk), *fk, *fa)
    p.evalsha(cla.sha, len(ck), *ck, *ca)
    done, res = p.execute(raise_on_error=False)
    if isinstance(done, redis.exceptions.NoScriptError):
        done = fin(keys=fk, args=fa)
    elif isinstance(done, Exception):
        raise done
    if isinstance(res, redis.exceptions.NoScriptError):
        res = cla(keys=ck, args=ca)
    elif isinstance(res, Exception):
        raise res
    return bool(done), _claimed(res, ca)


def reschedule(r: redis.Redis, keys: Keys, batch: Batch, *, due_ms: int, save: bool = False,
               retry: bool = False) -> bool:
    """Put the batch back until ``due_ms``; ``save`` stores its attempts and last error,
    ``retry`` lists it as waiting after a failure. The batch then waits for the next claim
    (this claim no longer holds it). False (nothing done) if this claim no longer held it."""
    return bool(script(r, "reschedule_batch")(
        keys=[keys.batches, keys.batches_due, keys.batches_retry, keys.batches_owner],
        args=[batch.id, due_ms, batch.to_json() if save else "", "1" if retry else "", batch.owner]))


def renew(r: redis.Redis, keys: Keys, batch: Batch, *, until_ms: int) -> bool:
    """Extend this claim's lease of the batch to ``until_ms``: False if another claim took it
    over (or it is finished), and then the caller must not send it. A lapsed lease nobody
    took is taken again."""
    if not script(r, "renew_batch")(keys=[keys.batches_owner, keys.batches_due],
                                    args=[batch.id, batch.owner, until_ms]):
        return False
    batch.lease_until = until_ms
    return True


def release_retries(r: redis.Redis, keys: Keys, *, now_ms: int, spacing_ms: int = RELEASE_SPACING_MS) -> int:
    """Braze answers again: every batch waiting to retry is due now. Returns how many."""
    return int(script(r, "release_retries")(keys=[keys.batches_due, keys.batches_retry], args=[now_ms, spacing_ms]))


def in_flight(r: redis.Redis, keys: Keys, users: Sequence[str]) -> list[str | None]:
    """The batch each of ``users`` is being delivered in, or None."""
    if not users:
        return []
    fields = [state.field(u) for u in users]
    p = r.pipeline(transaction=False)
    for u, f in zip(users, fields):
        p.hget(keys.outbox_flying, f if f is not None else b"")
        p.hget(keys.outbox_inflight, u)  # an id of another form, or a batch an earlier release claimed
    res = p.execute()
    return [(got.decode() if (got := res[2 * i] or res[2 * i + 1]) else None) for i in range(len(users))]


def pending(r: redis.Redis, keys: Keys, users: Sequence[str]) -> list[bool]:
    """Whether each of ``users`` has a state waiting to reach Braze: dirty (listed alone, or
    flagged in its bucket) or in flight."""
    if not users:
        return []
    p = r.pipeline(transaction=False)
    for u in users:
        p.zscore(keys.outbox_ready, u)
    listed = p.execute()
    flying = in_flight(r, keys, users)
    flagged = state.dirty_many(r, keys, users)
    return [listed[i] is not None or flying[i] is not None or flagged[i] for i in range(len(users))]


def oldest_pending_ms(r: redis.Redis, keys: Keys) -> int | None:
    """When the longest-waiting dirty profile became dirty (ms), or None if none waits."""
    p = r.pipeline(transaction=False)
    p.zrange(keys.outbox_ready, 0, 0, withscores=True)
    p.zrange(keys.outbox_buckets, 0, 0, withscores=True)
    firsts = [int(got[0][1]) for got in p.execute() if got]
    return min(firsts) if firsts else None


def sizes(r: redis.Redis, keys: Keys) -> dict[str, int]:
    p = r.pipeline(transaction=False)
    p.hget(keys.state_meta, "dirty")
    p.zcard(keys.outbox_ready)
    p.hlen(keys.outbox_flying)
    p.hlen(keys.outbox_inflight)
    p.zcard(keys.batches_due)
    p.llen(keys.outbox_events)
    p.zcard(keys.batches_retry)
    flagged, alone, flying, inflight, batches, events, retrying = p.execute()
    ready = int(flagged or 0) + alone
    return {"pending_profiles": ready, "inflight_profiles": flying + inflight, "open_batches": batches,
            "pending_events": events, "retrying_batches": retrying}
