"""Queued Braze /users/identify and /users/merge requests, and account-link nonces.

Items go on a Redis stream (keys.identity) and are sent by workers/identity.py
in batches of at most 50 under the identify limiter (Braze's shared budget for
these endpoints), with the same retry and dead-letter rules as /users/track.
"""

from __future__ import annotations

import json

import redis

from shared.keys import Keys
from shared.payload import ALIAS_LABEL
from shared.scripts import script

IDENTIFY = "identify"
MERGE = "merge"
# Braze accepts at most this many items per /users/identify or /users/merge request.
MAX_ITEMS = 50
# LINE account-link nonces are valid for 10 minutes; keep ours a little longer by default.
DEFAULT_NONCE_TTL = 15 * 60


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
    r.xadd(keys.identity, {"kind": kind, "external_id": external_id, "line_user_id": line_user_id})


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


def item_for(kind: str, external_id: str, line_user_id: str) -> dict:
    return identify_item(external_id, line_user_id) if kind == IDENTIFY else merge_item(external_id, line_user_id)


def payload(kind: str, items: list[dict]) -> dict:
    return {"aliases_to_identify": items} if kind == IDENTIFY else {"merge_updates": items}


def path(kind: str) -> str:
    return "/users/identify" if kind == IDENTIFY else "/users/merge"


def describe(kind: str, external_id: str, line_user_id: str) -> str:
    return json.dumps({"kind": kind, "external_id": external_id, "line_user_id": line_user_id})
