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


def item_for(kind: str, external_id: str, line_user_id: str) -> dict:
    return identify_item(external_id, line_user_id) if kind == IDENTIFY else merge_item(external_id, line_user_id)


def payload(kind: str, items: list[dict]) -> dict:
    return {"aliases_to_identify": items} if kind == IDENTIFY else {"merge_updates": items}


def path(kind: str) -> str:
    return "/users/identify" if kind == IDENTIFY else "/users/merge"


def describe(kind: str, external_id: str, line_user_id: str) -> str:
    return json.dumps({"kind": kind, "external_id": external_id, "line_user_id": line_user_id})
