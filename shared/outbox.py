"""The coalescing outbox and the batches being delivered from it.

Lifecycle of a batch (shared/lua/claim_batch.lua, finish_batch.lua, reschedule_batch.lua):

1. *claim*: the oldest dirty users not already in flight are taken, with their
   newest state read at that moment (so waiting updates are coalesced), into a
   batch stored in Redis before anything is sent. Each user is marked in flight
   with the batch id: a user is in at most one batch at a time, so Braze can't
   receive a newer state before an older one.
2. The batch has a lease (``batches:due``). A sender that dies leaves it
   overdue; the next claim takes overdue batches first and sends them again
   (at-least-once, same states).
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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from shared import rates
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


@dataclass
class Item:
    user: str
    state: str | None            # S / U, or None (linked profiles only, no state yet)
    version: str | None
    external_ids: list[str] = field(default_factory=list)


@dataclass
class Batch:
    id: str
    items: list[Item]
    events: list[dict]
    attempts: int
    created: int
    last_error: str = ""
    taken_over: bool = False
    retry_at: int = 0  # after a failure: when its own backoff lets it go again (ms)
    config_checked: bool = False  # once rejected whole as a configuration error: bisect fully next time

    def to_json(self) -> str:
        return json.dumps({
            "id": self.id,
            "items": [_item_json(i) for i in self.items],
            "events": [json.dumps(e) for e in self.events],
            "attempts": self.attempts,
            "created": self.created,
            "last_error": self.last_error,
            "retry_at": self.retry_at,
            "config_checked": self.config_checked,
        })

    @property
    def users(self) -> list[str]:
        return [i.user for i in self.items]


def _item_json(i: Item) -> dict:
    d: dict = {"u": i.user, "x": "\n".join(i.external_ids)}
    if i.version is not None and i.state is not None:
        d["v"] = i.version + i.state
    return d


def _decode(body: bytes | str, taken_over: bool) -> Batch:
    d = json.loads(body)
    items = []
    for it in d.get("items") or []:  # cjson encodes an empty list as {}
        v = it.get("v")
        items.append(Item(
            user=it["u"],
            state=v[-1] if v else None,
            version=v[:-1] if v else None,
            external_ids=[x for x in (it.get("x") or "").split("\n") if x],
        ))
    events = []
    for e in d.get("events") or []:
        ev = json.loads(e) if isinstance(e, str) else e
        ev.pop("q", None)
        events.append(ev)
    return Batch(id=d["id"], items=items, events=events, attempts=int(d.get("attempts", 0)),
                 created=int(d.get("created", 0)), last_error=d.get("last_error", ""), taken_over=taken_over,
                 retry_at=int(d.get("retry_at", 0)), config_checked=bool(d.get("config_checked", False)))


@dataclass(frozen=True)
class Wait:
    ms: int
    why: str  # 'delay' (partial batch not due yet), 'empty', 'full' (too many open batches)


def claim(r: redis.Redis, keys: Keys, *, now_ms: int, max_objects: int, flush_delay_ms: int,
          lease_ms: int = DEFAULT_LEASE_MS, max_open: int = DEFAULT_MAX_OPEN, probe: bool = False) -> Batch | Wait:
    k, a = _claim_call(keys, now_ms=now_ms, max_objects=max_objects, flush_delay_ms=flush_delay_ms,
                       lease_ms=lease_ms, max_open=max_open, probe=probe)
    return _claimed(script(r, "claim_batch")(keys=k, args=a))


def _claim_call(keys: Keys, *, now_ms: int, max_objects: int, flush_delay_ms: int,
                lease_ms: int = DEFAULT_LEASE_MS, max_open: int = DEFAULT_MAX_OPEN,
                probe: bool = False) -> tuple[list, list]:
    return ([keys.outbox_ready, keys.state, keys.outbox_inflight, keys.batches, keys.batches_due,
             keys.links_line, keys.outbox_events, keys.batches_retry],
            [now_ms, max_objects, flush_delay_ms, uuid.uuid4().hex, lease_ms, max_open, "1" if probe else ""])


def _claimed(res) -> Batch | Wait:
    kind = res[0].decode()
    if kind in ("old", "new"):
        return _decode(res[2], taken_over=kind == "old")
    if kind == "wait":
        return Wait(int(res[1]), "delay")
    return Wait(0, kind)


def finish(r: redis.Redis, keys: Keys, batch: Batch, *, delivered: int,
           dead: Sequence[tuple[str, str, dict]] = (), now_ms: int = 0) -> bool:
    """Release the batch's users and delete it; ``dead`` = (kind, reason, payload) dead letters.

    ``delivered`` objects are also counted in the ``delivered`` rate bucket of ``now_ms`` (shared/rates.py).
    """
    k, a = _finish_call(keys, batch, delivered=delivered, dead=dead, now_ms=now_ms)
    return bool(script(r, "finish_batch")(keys=k, args=a))


def _finish_call(keys: Keys, batch: Batch, *, delivered: int, dead: Sequence[tuple[str, str, dict]],
                 now_ms: int) -> tuple[list, list]:
    args: list[str | int] = [batch.id, delivered, len(dead), rates.TTL]
    for kind, reason, payload in dead:
        args += [kind, reason, json.dumps(payload)]
    return ([keys.outbox_inflight, keys.batches, keys.batches_due, keys.dlq, keys.stats, keys.batches_retry,
             rates.key(keys, rates.DELIVERED, now_ms / 1000)], args)


def finish_and_claim(r: redis.Redis, keys: Keys, batch: Batch, *, delivered: int,
                     dead: Sequence[tuple[str, str, dict]] = (), now_ms: int, max_objects: int,
                     flush_delay_ms: int, lease_ms: int = DEFAULT_LEASE_MS) -> Batch | Wait:
    """:func:`finish` this batch and :func:`claim` the next, in one round trip.

    The two scripts stay separate (each atomic on its own); they only share a
    pipeline. A script Redis no longer has (SCRIPT FLUSH, a restart without
    persistence of the cache) is loaded and run again on its own.
    """
    fk, fa = _finish_call(keys, batch, delivered=delivered, dead=dead, now_ms=now_ms)
    ck, ca = _claim_call(keys, now_ms=now_ms, max_objects=max_objects, flush_delay_ms=flush_delay_ms,
                         lease_ms=lease_ms)
    fin, cla = script(r, "finish_batch"), script(r, "claim_batch")
    p = r.pipeline(transaction=False)
    p.evalsha(fin.sha, len(fk), *fk, *fa)
    p.evalsha(cla.sha, len(ck), *ck, *ca)
    done, res = p.execute(raise_on_error=False)
    if isinstance(done, redis.exceptions.NoScriptError):
        fin(keys=fk, args=fa)
    elif isinstance(done, Exception):
        raise done
    if isinstance(res, redis.exceptions.NoScriptError):
        res = cla(keys=ck, args=ca)
    elif isinstance(res, Exception):
        raise res
    return _claimed(res)


def reschedule(r: redis.Redis, keys: Keys, batch: Batch, *, due_ms: int, save: bool = False,
               retry: bool = False) -> bool:
    """Put the batch back until ``due_ms``; ``save`` stores its attempts and last error,
    ``retry`` lists it as waiting after a failure."""
    return bool(script(r, "reschedule_batch")(
        keys=[keys.batches, keys.batches_due, keys.batches_retry],
        args=[batch.id, due_ms, batch.to_json() if save else "", "1" if retry else ""]))


def release_retries(r: redis.Redis, keys: Keys, *, now_ms: int, spacing_ms: int = RELEASE_SPACING_MS) -> int:
    """Braze answers again: every batch waiting to retry is due now. Returns how many."""
    return int(script(r, "release_retries")(keys=[keys.batches_due, keys.batches_retry], args=[now_ms, spacing_ms]))


def sizes(r: redis.Redis, keys: Keys) -> dict[str, int]:
    p = r.pipeline(transaction=False)
    p.zcard(keys.outbox_ready)
    p.hlen(keys.outbox_inflight)
    p.zcard(keys.batches_due)
    p.llen(keys.outbox_events)
    p.zcard(keys.batches_retry)
    ready, inflight, batches, events, retrying = p.execute()
    return {"pending_profiles": ready, "inflight_profiles": inflight, "open_batches": batches,
            "pending_events": events, "retrying_batches": retrying}
