"""With Redis gone the ingress answers 503 (never 200), and recovers when it returns."""

from __future__ import annotations

import time

import pytest

from ingress import create_app
from shared.embedded_redis import EmbeddedRedis
from shared.signature import sign
from shared.webhook_queue import BODY_FIELD
from tests.conftest import TEST_SECRET


@pytest.fixture
def own_redis():
    # Our own server: stopping the session one would disturb other tests.
    server = EmbeddedRedis().start()
    yield server
    server.cleanup()


def test_503_while_redis_is_down_then_recovers(own_redis, settings, keys):
    client = create_app(settings.replace(redis_url=own_redis.url)).test_client()
    body = b'{"destination":"U1","events":[{"type":"follow","timestamp":1}]}'
    invalid = b'{"destination":"U1","events":[{"type":"follow"}]}'

    def send(b):
        return client.post("/line/events", data=b, headers={"X-Line-Signature": sign(TEST_SECRET, b)})

    assert send(body).status_code == 200
    assert client.get("/readyz").status_code == 200

    own_redis.stop()
    started = time.monotonic()
    assert send(body).status_code == 503
    assert send(invalid).status_code == 503  # the rejected list is in Redis too
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    assert time.monotonic() - started < 2.0, "LINE gives up after 2 s"
    # Verify-only and unsigned requests need no Redis.
    assert send(b'{"destination":"U1","events":[]}').status_code == 200
    assert client.post("/line/events", data=body).status_code == 401

    own_redis.start()  # same port and data directory (AOF)
    assert client.get("/readyz").status_code == 200
    assert send(body).status_code == 200
    assert send(invalid).status_code == 400

    import redis

    r = redis.Redis.from_url(own_redis.url)
    assert [f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)] == [body, body]
    assert r.xlen(keys.rejected) == 1
    r.close()


def test_unreachable_redis_answers_503_quickly(settings):
    from shared.embedded_redis import free_port

    client = create_app(settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")).test_client()
    body = b'{"destination":"U1","events":[{"type":"follow","timestamp":1}]}'
    resp = client.post("/line/events", data=body, headers={"X-Line-Signature": sign(TEST_SECRET, body)})
    assert resp.status_code == 503
    assert resp.get_json() == {"error": "store unavailable"}


def test_redis_refusing_writes_answers_503(own_redis, settings):
    """noeviction + maxmemory reached: XADD fails with OOM, the body is not stored."""
    import redis

    r = redis.Redis.from_url(own_redis.url)
    client = create_app(settings.replace(redis_url=own_redis.url)).test_client()
    body = b'{"destination":"U1","events":[{"type":"follow","timestamp":1}]}'
    r.config_set("maxmemory", 1)
    try:
        resp = client.post("/line/events", data=body, headers={"X-Line-Signature": sign(TEST_SECRET, body)})
        assert resp.status_code == 503
    finally:
        r.config_set("maxmemory", 0)
        r.close()


def test_hung_redis_answers_503_inside_lines_budget(own_redis, settings):
    """A Redis that accepts connections but never answers: the 1 s socket timeout decides."""
    import signal

    client = create_app(settings.replace(redis_url=own_redis.url)).test_client()
    body = b'{"destination":"U1","events":[{"type":"follow","timestamp":1}]}'
    headers = {"X-Line-Signature": sign(TEST_SECRET, body)}
    assert client.post("/line/events", data=body, headers=headers).status_code == 200
    own_redis.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert client.post("/line/events", data=body, headers=headers).status_code == 503
        assert time.monotonic() - started < 1.8
    finally:
        own_redis.proc.send_signal(signal.SIGCONT)
    assert client.post("/line/events", data=body, headers=headers).status_code == 200
