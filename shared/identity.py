"""Queued Braze /users/identify and /users/merge requests, and account-link nonces.

Items go on a Redis stream (keys.identity) and are sent by workers/identity.py
in batches of at most 50 under the identify limiter (Braze's shared budget for
these endpoints), with the same split, retry and dead-letter rules as
/users/track (workers/settle.py).

This module owns the values stored for them (nothing else reads them by name):

- a queued item, :class:`Request`: the stream entry's fields ``kind``,
  ``external_id``, ``line_user_id`` (:func:`enqueue` writes them,
  :func:`request` reads them); a dead letter of kind ``identify`` / ``merge``
  holds the same three as its payload (shared/dlq.py);
- an item's retry state, :class:`RetryState`: its failed attempts
  (``{P}:identity:attempts``, stream id -> count) and, while it waits after a
  failure, when its own backoff lets it go (``{P}:identity:retry``, stream id
  -> ms). Written by :func:`record_retries`, read by :func:`retry_states`,
  forgotten with the item (:func:`forget`, in the transaction that settles
  it); :func:`release_retries` makes every waiting item due when Braze answers
  again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import redis

from shared.keys import Keys
from shared.payload import ALIAS_LABEL
from shared.scripts import script

IDENTIFY = "identify"
MERGE = "merge"
KINDS = (IDENTIFY, MERGE)
# Braze accepts at most this many items per /users/identify or /users/merge request.
MAX_ITEMS = 50
# LINE account-link nonces are valid for 10 minutes; keep ours a little longer by default.
DEFAULT_NONCE_TTL = 15 * 60

# The fields of a queued item (and of an identify/merge dead letter's payload).
KIND, EXTERNAL_ID, LINE_USER_ID = "kind", "external_id", "line_user_id"


@dataclass(frozen=True)
class Request:
    """One queued /users/identify or /users/merge item. ``kind`` may be one this release
    does not know (an entry written by hand or by a later release): see :attr:`known`."""

    kind: str
    external_id: str
    line_user_id: str

    @property
    def known(self) -> bool:
        return self.kind in KINDS

    def fields(self) -> dict[str, str]:
        """The stream entry's fields, and an identify/merge dead letter's payload."""
        return {KIND: self.kind, EXTERNAL_ID: self.external_id, LINE_USER_ID: self.line_user_id}

    def item(self) -> dict:
        """The item of Braze's request body."""
        return item_for(self.kind, self.external_id, self.line_user_id)


def request(fields: Mapping) -> Request:
    """The item stored as ``fields`` (a stream entry as redis-py returns it, bytes, or a letter's
    payload, str); a missing field reads as ''."""
    def get(name: str) -> str:
        v = fields.get(name, fields.get(name.encode(), ""))
        return v.decode("utf-8", "replace") if isinstance(v, bytes) else v if isinstance(v, str) else ""
    return Request(get(KIND), get(EXTERNAL_ID), get(LINE_USER_ID))


def alias(line_user_id: str) -> dict:
    return {"alias_name": line_user_id, "alias_label": ALIAS_LABEL}


def identify_item(external_id: str, line_user_id: str) -> dict:
    return {"external_id": external_id, "user_alias": alias(line_user_id)}


def merge_item(external_id: str, line_user_id: str) -> dict:
    """Merge the anonymous LINE profile into the known customer's profile."""
    return {"identifier_to_merge": {"user_alias": alias(line_user_id)},
            "identifier_to_keep": {"external_id": external_id}}


def enqueue(r: redis.Redis | redis.client.Pipeline, keys: Keys, kind: str, external_id: str,
            line_user_id: str) -> None:
    r.xadd(keys.identity, Request(kind, external_id, line_user_id).fields())


# -- retry state ---------------------------------------------------------------

@dataclass(frozen=True)
class RetryState:
    attempts: int = 0   # failed attempts so far
    retry_at: int = 0   # while waiting after a failure: when it may go again (ms); 0: now


def retry_states(r: redis.Redis, keys: Keys, ids: Sequence) -> dict:
    """The retry state of each stream id (one round trip); items never failed have the default."""
    if not ids:
        return {}
    p = r.pipeline(transaction=False)
    p.hmget(keys.identity_attempts, list(ids))
    for eid in ids:
        p.zscore(keys.identity_retry, eid)
    res = p.execute()
    return {eid: RetryState(int(n or 0), int(at or 0)) for eid, n, at in zip(ids, res[0], res[1:])}


def record_retries(p: redis.Redis | redis.client.Pipeline, keys: Keys, states: Mapping) -> None:
    """Store items' new retry states (stream id -> :class:`RetryState`), on the caller's pipeline."""
    if not states:
        return
    p.hset(keys.identity_attempts, mapping={eid: st.attempts for eid, st in states.items()})
    waiting = {eid: st.retry_at for eid, st in states.items() if st.retry_at}
    if waiting:
        p.zadd(keys.identity_retry, waiting)


def forget(p: redis.client.Pipeline, keys: Keys, ids: Sequence) -> None:
    """Settled items' retry states go with them (on the settling transaction)."""
    if ids:
        p.hdel(keys.identity_attempts, *ids)
        p.zrem(keys.identity_retry, *ids)


def release_retries(r: redis.Redis, keys: Keys) -> int:
    """Braze answers again: every item waiting after a failure may go now (attempts kept).
    Returns how many were waiting."""
    p = r.pipeline(transaction=True)
    p.zcard(keys.identity_retry)
    p.delete(keys.identity_retry)
    return int(p.execute()[0])


def sizes(r: redis.Redis, keys: Keys) -> dict[str, int]:
    """The identity queue: items queued (not yet settled), held by a worker, waiting to retry."""
    p = r.pipeline(transaction=False)
    p.xlen(keys.identity)
    p.zcard(keys.identity_retry)
    queued, retrying = p.execute()
    try:
        held = int(r.xpending(keys.identity, "workers")["pending"]) if queued else 0
    except redis.ResponseError:  # no group yet: nothing read
        held = 0
    return {"queued": queued, "held": held, "retrying": retrying}


# -- nonces ---------------------------------------------------------------------

def register_nonce(r: redis.Redis, keys: Keys, nonce: str, external_id: str,
                   ttl: int = DEFAULT_NONCE_TTL) -> None:
    r.set(keys.nonce(nonce), external_id, ex=ttl)


def take_nonce(r: redis.Redis, keys: Keys, nonce: str, event_key: str, *, ttl: int) -> str | None:
    """The external_id registered for ``nonce``, for one event only (shared/lua/take_nonce.lua).

    The nonce is deleted in the same step as it is read, so two events carrying
    it can never both link. The event that took it (``event_key``: its
    webhookEventId) gets it again if it is replayed, until
    :func:`forget_taken_nonce` (or ``ttl`` seconds).
    """
    ext = script(r, "take_nonce")(keys=[keys.nonce(nonce), keys.nonce_taken(event_key)], args=[ttl])
    return ext.decode() if ext else None


def forget_taken_nonce(r: redis.Redis | redis.client.Pipeline, keys: Keys, event_key: str) -> None:
    """The event that took a nonce is done (and marked so): its replays need the nonce no more."""
    r.delete(keys.nonce_taken(event_key))


# -- Braze's request --------------------------------------------------------------

def item_for(kind: str, external_id: str, line_user_id: str) -> dict:
    return identify_item(external_id, line_user_id) if kind == IDENTIFY else merge_item(external_id, line_user_id)


def payload(kind: str, items: list[dict]) -> dict:
    return {"aliases_to_identify": items} if kind == IDENTIFY else {"merge_updates": items}


def array(kind: str) -> str:
    """The request body's array Braze names in its per-item errors."""
    return next(iter(payload(kind, [])))


def path(kind: str) -> str:
    return "/users/identify" if kind == IDENTIFY else "/users/merge"

