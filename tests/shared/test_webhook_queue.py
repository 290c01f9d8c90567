"""The Redis stream between ingress and workers."""

from __future__ import annotations

import time

import pytest
import redis

from shared.embedded_redis import free_port
from shared.errors import StoreUnavailable
from shared.keys import STREAM_GROUP
from shared.redis_conn import client
from shared.webhook_queue import BODY_FIELD, RECEIVED_FIELD, ensure_group, enqueue, enqueue_pinned, reject


def test_enqueue_keeps_raw_bytes_and_arrival_time(r, keys):
    body = b'{"destination":"U","events":[]}\n\x00\xff'
    before = int(time.time() * 1000)
    entry_id = enqueue(r, keys, body)
    [(got_id, fields)] = r.xrange(keys.webhooks)
    assert got_id.decode() == entry_id
    assert fields[BODY_FIELD] == body
    assert before <= int(fields[RECEIVED_FIELD]) <= int(time.time() * 1000)


def test_enqueue_preserves_order(r, keys):
    ids = [enqueue(r, keys, str(i).encode()) for i in range(5)]
    assert [f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)] == [b"0", b"1", b"2", b"3", b"4"]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))


def test_reject_keeps_body_and_reason_and_is_capped(r, keys):
    reject(r, keys, b"not json", "body is not JSON", max_len=10)
    [(_id, fields)] = r.xrange(keys.rejected)
    assert fields[BODY_FIELD] == b"not json"
    assert fields[b"reason"] == b"body is not JSON"
    for i in range(1000):
        reject(r, keys, str(i).encode(), "x", max_len=10)
    # Approximate trimming works in whole stream nodes (100 entries by default).
    assert 10 <= r.xlen(keys.rejected) <= 200
    assert r.xrevrange(keys.rejected, count=1)[0][1][BODY_FIELD] == b"999"
    assert r.xlen(keys.webhooks) == 0


def test_ensure_group_is_idempotent_and_creates_the_stream(r, keys):
    ensure_group(r, keys)
    ensure_group(r, keys)
    groups = r.xinfo_groups(keys.webhooks)
    assert [g["name"] for g in groups] == [STREAM_GROUP.encode()]


def test_redis_down_raises_store_unavailable(keys):
    dead = client(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable):
        enqueue(dead, keys, b"x")
    with pytest.raises(StoreUnavailable):
        reject(dead, keys, b"x", "reason", max_len=10)


def test_redis_refusing_the_write_raises_store_unavailable(r, keys):
    r.set(keys.webhooks, "not a stream")  # WRONGTYPE
    with pytest.raises(StoreUnavailable):
        enqueue(r, keys, b"x")


def pinned(url: str) -> redis.connection.AbstractConnection:
    """One connection of its own (not yet connected), as the ingress pins one per thread."""
    return client(url).connection_pool.make_connection()


def test_pinned_enqueue_stores_like_enqueue(r, keys, redis_url):
    body = b'{"destination":"U","events":[]}\n\x00\xff'
    before = int(time.time() * 1000)
    entry_id = enqueue_pinned(pinned(redis_url), keys, body)
    [(got_id, fields)] = r.xrange(keys.webhooks)
    assert got_id.decode() == entry_id
    assert fields == {BODY_FIELD: body, RECEIVED_FIELD: fields[RECEIVED_FIELD]}
    assert before <= int(fields[RECEIVED_FIELD]) <= int(time.time() * 1000)


def test_pinned_connection_dropped_by_redis_is_replaced_once(r, keys, redis_url):
    c = pinned(redis_url)
    enqueue_pinned(c, keys, b"first")
    killed = r.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    enqueue_pinned(c, keys, b"second")  # the stale socket fails; a fresh one stores it
    assert [f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)] == [b"first", b"second"]


def test_pinned_redis_down_or_refusing_raises_store_unavailable(r, keys, redis_url):
    dead = pinned(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable):
        enqueue_pinned(dead, keys, b"x")
    r.set(keys.webhooks, "not a stream")  # WRONGTYPE
    with pytest.raises(StoreUnavailable):
        enqueue_pinned(pinned(redis_url), keys, b"x")
