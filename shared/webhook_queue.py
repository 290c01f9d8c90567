"""The durable queue between ingress and workers: a Redis stream of raw bodies."""

from __future__ import annotations

import time

import redis

from shared import resp, stream_group
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
        entry_id = r.xadd(keys.webhooks, {BODY_FIELD: body, RECEIVED_FIELD: _received_ms()})
    except (REDIS_DOWN + (redis.ResponseError,)) as e:
        raise StoreUnavailable("could not store webhook body") from e
    return _text(entry_id)


def requeue(p: redis.client.Pipeline, keys: Keys, body: bytes) -> None:
    """Queue ``body`` again inside the caller's transaction (a dead letter replayed)."""
    p.xadd(keys.webhooks, {BODY_FIELD: body, RECEIVED_FIELD: _received_ms()})


def enqueue_pinned(conn: redis.connection.AbstractConnection, keys: Keys, body: bytes) -> str:
    """``enqueue`` over one connection the caller owns (the ingress pins one per thread).

    The ingress's hot path: it sends one pre-packed XADD and reads the reply,
    skipping redis-py's per-command machinery (pool, retry, instrumentation),
    which costs more CPU than the rest of the request's own work. The
    connection's settings (auth, TLS, database, timeouts) are redis-py's.
    A connection that Redis dropped (restart, idle timeout) fails once with
    ConnectionError and is retried once on a fresh socket; a timeout is not
    retried, so an answer stays well inside LINE's 2 s. If the first attempt's
    XADD did land, the retry stores the body twice; workers deduplicate
    events by webhookEventId.
    """
    packed = resp.pack(b"XADD", keys.webhooks.encode(), b"*", BODY_FIELD, body, RECEIVED_FIELD, _received_ms().encode())
    try:
        try:
            entry_id = resp.round_trip(conn, packed)
        except redis.ConnectionError:
            entry_id = resp.round_trip(conn, packed)
    except (REDIS_DOWN + (redis.ResponseError,)) as e:
        raise StoreUnavailable("could not store webhook body") from e
    return _text(entry_id)


def reject(r: redis.Redis, keys: Keys, body: bytes, reason: str, *, max_len: int) -> str:
    """Keep a signed-but-invalid body for inspection (capped at about ``max_len`` entries)."""
    try:
        entry_id = r.xadd(
            keys.rejected,
            {BODY_FIELD: body, b"reason": reason, RECEIVED_FIELD: _received_ms()},
            maxlen=max_len,
            approximate=True,
        )
    except (REDIS_DOWN + (redis.ResponseError,)) as e:
        raise StoreUnavailable("could not store rejected body") from e
    return _text(entry_id)


def _received_ms() -> str:
    return str(int(time.time() * 1000))


def _text(entry_id: bytes | str) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def ensure_group(r: redis.Redis, keys: Keys) -> None:
    """Create the consumer group (and the stream) if missing. Safe to call often."""
    stream_group.ensure_group(r, keys.webhooks)
