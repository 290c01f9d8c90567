"""workers/broker.py: Celery's Redis transport treats a full Redis as "skip, try again later"."""

from __future__ import annotations

import pytest
import redis
from kombu import Connection, Exchange, Queue

from shared.embedded_redis import EmbeddedRedis
from shared.scripts import supports_flags
from workers.broker import QUIET_WORKER, Worker
from workers.celery_app import create_app


@pytest.fixture
def full_redis():
    server = EmbeddedRedis().start()  # ours alone: filling it must not disturb other tests
    r = redis.Redis.from_url(server.url)
    r.set("ballast", b"x" * 500_000)
    yield server, r
    server.cleanup()


def fill(r):
    r.config_set("maxmemory", str(r.info("memory")["used_memory"] - 200_000))


def test_the_apps_worker_never_runs_mingle_gossip_or_heartbeat(settings):
    app = create_app(settings)
    assert issubclass(app.Worker, Worker)
    assert app.conf.broker_transport == "workers.broker:Transport"
    w = app.Worker.__new__(app.Worker)
    assert w.prepare_args(without_mingle=False, without_gossip=False, concurrency=2) == \
        {**QUIET_WORKER, "concurrency": 2}


def test_a_binding_refused_when_full_is_written_once_redis_has_room(full_redis):
    server, r = full_redis
    fill(r)
    with Connection(server.url, transport="workers.broker:Transport") as conn:
        ch = conn.channel()
        q = Queue("q1", Exchange("q1"), "q1", channel=ch)
        q.declare()  # kombu's own transport raises OutOfMemoryError here (MULTI LLEN, then SADD)
        assert not r.exists("_kombu.binding.q1")
        assert ch._pending_binds
        ch.retry_pending_binds(now=float("inf"))  # still full: stays pending
        assert ch._pending_binds
        r.delete("ballast")
        ch.retry_pending_binds(now=float("inf"))
        assert not ch._pending_binds
        assert r.smembers("_kombu.binding.q1") == {b"q1\x06\x16\x06\x16q1"}


@pytest.mark.parametrize("prefix", ["", "{p}:celery:"])
def test_a_task_taken_when_full_is_recorded_and_acknowledged(full_redis, prefix):
    server, r = full_redis
    if not supports_flags(r):
        pytest.skip("redis-server older than 7: no allow-oom scripts")
    with Connection(server.url, transport="workers.broker:Transport",
                    transport_options={"global_keyprefix": prefix}) as conn:
        q = Queue("q2", Exchange("q2"), "q2")
        conn.Producer().publish({"n": 1}, exchange=q.exchange, routing_key="q2", declare=[q])
        fill(r)
        ch = conn.channel()
        msg = q(ch).get()  # RPOP, then the unacknowledged record: ZADD/HSET, refused plain when full
        assert msg is not None and msg.payload == {"n": 1}
        assert r.hlen(prefix + "unacked") == 1 and r.zcard(prefix + "unacked_index") == 1
        msg.ack()  # ZREM/HDEL in MULTI is refused when full; sent plainly
        assert r.hlen(prefix + "unacked") == 0 and r.zcard(prefix + "unacked_index") == 0
