"""The Redis memory watermark (ingress/memory_guard.py): 503 before Redis is full."""

from __future__ import annotations

import threading

import pytest
import redis

from ingress import create_app
from ingress.memory_guard import MemoryWatermark, over_watermark
from ingress.state import EXTENSION
from shared.errors import StoreUnavailable


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeRedis:
    def __init__(self, used: int, maxmemory: int):
        self.used, self.maxmemory, self.calls, self.error = used, maxmemory, 0, None

    def info(self, section: str):
        assert section == "memory"
        self.calls += 1
        if self.error:
            raise self.error
        return {"used_memory": self.used, "maxmemory": self.maxmemory}


def test_the_rule():
    assert over_watermark(91, 100, 0.9) and not over_watermark(90, 100, 0.9)
    assert not over_watermark(10**9, 0, 0.9)  # no maxmemory: off
    assert not over_watermark(100, 100, 0)     # watermark 0: off


def test_redis_is_asked_at_most_once_a_second():
    clock, r = FakeClock(), FakeRedis(95, 100)
    guard = MemoryWatermark(0.9, clock=clock)
    assert all(guard.over(r) for _ in range(1000))
    assert r.calls == 1
    r.used = 50
    clock.now += 0.99
    assert guard.over(r) and r.calls == 1  # still the cached figure
    clock.now += 0.02
    assert not guard.over(r) and r.calls == 2


def test_off_never_asks():
    r = FakeRedis(100, 100)
    assert not MemoryWatermark(0).over(r) and r.calls == 0


def test_a_failed_read_is_503_once_and_not_retried_before_the_second_is_up():
    clock, r = FakeClock(), FakeRedis(10, 100)
    guard = MemoryWatermark(0.9, clock=clock)
    r.error = redis.TimeoutError("hung")
    with pytest.raises(StoreUnavailable):
        guard.over(r)
    assert not guard.over(r) and r.calls == 1  # other requests go on (their write tells)
    r.error = None
    clock.now += 1
    assert not guard.over(r) and r.calls == 2


def test_a_dropped_connection_is_retried_once():
    class Dropped(FakeRedis):
        def info(self, section):
            if self.calls == 0:
                self.calls += 1
                raise redis.ConnectionError("Connection closed by server.")
            return super().info(section)

    r = Dropped(95, 100)
    assert MemoryWatermark(0.9).over(r) and r.calls == 2


def test_threads_share_one_read():
    clock, r = FakeClock(), FakeRedis(95, 100)
    guard = MemoryWatermark(0.9, clock=clock)
    results = []
    threads = [threading.Thread(target=lambda: results.append(guard.over(r))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert r.calls == 1 and len(results) == 16


@pytest.fixture
def maxmemory(r):
    """Set the session Redis's maxmemory so that it is ``share`` full now; restored afterwards."""
    def set_share(share: float) -> None:
        used = int(r.info("memory")["used_memory"])
        r.config_set("maxmemory", int(used / share))

    yield set_share
    r.config_set("maxmemory", 0)


def test_a_real_redis_above_the_watermark_gets_503_and_nothing_is_stored(settings, r, keys, maxmemory,
                                                                         follow_body):
    from shared.signature import sign
    from tests.conftest import TEST_SECRET

    maxmemory(0.75)  # below Redis's own limit (writes still work), well above the watermark of 0.4
    app = create_app(settings.replace(ingress_memory_high_watermark=0.4))
    clock = FakeClock()
    app.extensions[EXTENSION].memory.clock = clock
    client = app.test_client()
    headers = {"X-Line-Signature": sign(TEST_SECRET, follow_body)}
    r.config_resetstat()
    statuses = [client.post("/line/events", data=follow_body, headers=headers).status_code for _ in range(50)]
    assert statuses == [503] * 50
    assert client.post("/line/events", data=follow_body, headers=headers).json == {"error": "store full"}
    assert r.xlen(keys.webhooks) == 0
    assert int(r.info("commandstats")["cmdstat_info"]["calls"]) == 1  # once for 51 requests
    # Unsigned requests are still told apart.
    assert client.post("/line/events", data=follow_body).status_code == 401

    # The workers drained it (here: more room); after the next refresh webhooks are taken again.
    r.config_set("maxmemory", 0)
    assert client.post("/line/events", data=follow_body, headers=headers).status_code == 503  # cached
    clock.now += 1.0
    assert client.post("/line/events", data=follow_body, headers=headers).status_code == 200
    assert r.xlen(keys.webhooks) == 1


def test_the_default_watermark_lets_a_redis_under_it_through(settings, r, keys, maxmemory, follow_body):
    from shared.signature import sign
    from tests.conftest import TEST_SECRET

    maxmemory(0.3)
    client = create_app(settings).test_client()  # INGRESS_MEMORY_HIGH_WATERMARK's default, 0.9
    assert client.post("/line/events", data=follow_body,
                       headers={"X-Line-Signature": sign(TEST_SECRET, follow_body)}).status_code == 200
    assert r.xlen(keys.webhooks) == 1


def test_the_setting_is_a_fraction():
    from shared.config import load_settings
    from shared.errors import ConfigError

    assert load_settings({}, dotenv=False).ingress_memory_high_watermark == 0.9
    assert load_settings({"INGRESS_MEMORY_HIGH_WATERMARK": "0"}, dotenv=False).ingress_memory_high_watermark == 0
    for bad in ("1.5", "-0.1", "ninety"):
        with pytest.raises(ConfigError, match="INGRESS_MEMORY_HIGH_WATERMARK"):
            load_settings({"INGRESS_MEMORY_HIGH_WATERMARK": bad}, dotenv=False)
