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


# With replicas: how long the ingress waits for a replica to confirm a webhook (ms).
REPLICA_WAIT_MS = 500


def enqueue_pinned(conn: redis.connection.AbstractConnection, keys: Keys, body: bytes, *, replicas: int = 0) -> str:
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

    ``replicas`` > 0 (LINESYNC_REDIS_DURABILITY=replicas): the XADD is followed,
    in the same round trip, by ``WAIT replicas REPLICA_WAIT_MS``; fewer replicas
    confirming it is StoreUnavailable (503: LINE redelivers). A body answered
    200 is then on a replica too, so a failover cannot lose it — including a
    Sentinel failover, where the old primary accepts writes until it is demoted
    and drops them then (its promoted replica no longer confirms anything).
    """
    packed = resp.pack(b"XADD", keys.webhooks.encode(), b"*", BODY_FIELD, body, RECEIVED_FIELD, _received_ms().encode())
    if replicas:
        packed += resp.pack(b"WAIT", replicas, REPLICA_WAIT_MS)
    try:
        try:
            entry_id, confirmed = _round_trip(conn, packed, replicas)
        except redis.ConnectionError:
            entry_id, confirmed = _round_trip(conn, packed, replicas)
    except (REDIS_DOWN + (redis.ResponseError,)) as e:
        raise StoreUnavailable("could not store webhook body") from e
    if confirmed < replicas:
        raise StoreUnavailable(f"webhook body stored but confirmed by {confirmed} of {replicas} replicas")
    return _text(entry_id)


def _round_trip(conn: redis.connection.AbstractConnection, packed: bytes, replicas: int = 0):
    """The XADD's reply and, with ``replicas``, how many replicas the WAIT behind it heard from."""
    if not replicas:
        return resp.round_trip(conn, packed), 0
    conn.send_packed_command([packed], check_health=False)  # redis-py disconnects on any error
    try:
        entry_id = conn.read_response()
    except redis.ResponseError:
        conn.disconnect()  # the WAIT's reply is still on the socket: never read it as the next answer
        raise
    return entry_id, conn.read_response()


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
