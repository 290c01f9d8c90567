"""The durable queue between ingress and workers: a Redis stream of raw bodies."""

from __future__ import annotations

import time

import redis

from shared.errors import StoreUnavailable
from shared.keys import STREAM_GROUP, Keys
from shared.redis_conn import REDIS_DOWN

BODY_FIELD = b"body"
RECEIVED_FIELD = b"received_ms"


def enqueue(r: redis.Redis, keys: Keys, body: bytes) -> str:
    """Append the raw body to the webhook stream; return its stream id.

    Raises StoreUnavailable when Redis cannot take it (the ingress answers 503).
    """
    try:
        entry_id = r.xadd(keys.webhooks, {BODY_FIELD: body, RECEIVED_FIELD: str(int(time.time() * 1000))})
    except (REDIS_DOWN + (redis.ResponseError,)) as e:
        raise StoreUnavailable("could not store webhook body") from e
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def reject(r: redis.Redis, keys: Keys, body: bytes, reason: str, *, max_len: int) -> str:
    """Keep a signed-but-invalid body for inspection (capped at about ``max_len`` entries)."""
    try:
        entry_id = r.xadd(
            keys.rejected,
            {BODY_FIELD: body, b"reason": reason, RECEIVED_FIELD: str(int(time.time() * 1000))},
            maxlen=max_len,
            approximate=True,
        )
    except (REDIS_DOWN + (redis.ResponseError,)) as e:
        raise StoreUnavailable("could not store rejected body") from e
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def ensure_group(r: redis.Redis, keys: Keys) -> None:
    """Create the consumer group (and the stream) if missing. Safe to call often."""
    try:
        r.xgroup_create(keys.webhooks, STREAM_GROUP, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
