"""The clock shared by every host: Redis's TIME, not the local one."""

import time

import pytest
import redis

from shared.clock import FakeClock, RedisClock, now_ms


def test_redis_clock_follows_the_server_not_this_host(r, monkeypatch):
    clock = RedisClock(r)
    sec, usec = r.time()
    monkeypatch.setattr(time, "time", lambda: 0.0)  # this host's clock is decades off
    assert clock.now() == pytest.approx(sec + usec / 1e6, abs=0.5)


def test_redis_clock_advances_between_readings_without_asking(r):
    clock = RedisClock(r, resync_every=60)
    t0 = clock.now()
    calls = []
    real = r.time
    r.time = lambda: calls.append(1) or real()
    time.sleep(0.05)
    assert 0.04 <= clock.now() - t0 < 1
    assert calls == []  # one reading serves until resync_every


def test_redis_clock_falls_back_to_the_local_clock_until_redis_answers():
    down = redis.Redis(port=1, socket_connect_timeout=0.2)
    clock = RedisClock(down)
    assert clock.now() == pytest.approx(time.time(), abs=1)


def test_fake_clock_moves_only_when_told():
    c = FakeClock(100.0)
    c.sleep(2.5)
    c.advance(0.5)
    assert now_ms(c) == 103_000
