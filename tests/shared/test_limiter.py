"""Cluster-wide limiter arithmetic and Redis state, with an explicit clock."""

from shared.config import RateLimit, parse_rate
from shared.limiter import Limiter, gcra_params

import pytest


def test_parse_rate():
    assert parse_rate("3000/3s") == RateLimit(3000, 3.0)
    assert parse_rate("100/s") == RateLimit(100, 1.0)
    assert parse_rate("20000/1m") == RateLimit(20000, 60.0)
    assert parse_rate("5/500ms") == RateLimit(5, 0.5)
    for bad in ("", "x/3s", "0/3s", "3000", "3/0s"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_gcra_spacing():
    interval, tolerance = gcra_params(RateLimit(3000, 3.0))   # a burst of 93, the rest spaced
    assert interval == pytest.approx(3000 / 2907) and tolerance == pytest.approx(93 * 3000 / 2907)
    assert gcra_params(RateLimit(10, 1.0)) == (100.0, 0.0)     # small limits: no burst


@pytest.mark.parametrize("limit", [RateLimit(3000, 3.0), RateLimit(100, 1.0), RateLimit(64, 1.0)])
def test_bursts_never_take_a_window_over_the_limit(r, keys, limit):
    lim = Limiter(r, keys, "track", limit)
    period = int(limit.period * 1000)
    granted = []
    for t in range(0, 3 * period, max(1, period // 1000)):  # greedy: ask as often as possible
        while lim.acquire(t).allowed:
            granted.append(t)
    for start in range(0, 2 * period, max(1, period // 200)):
        assert sum(start <= g < start + period for g in granted) <= limit.requests
    assert len(granted) >= 2.5 * limit.requests * (1 - 1 / 32)


def test_never_more_than_the_limit_in_any_window(r, keys):
    lim = Limiter(r, keys, "track", RateLimit(10, 1.0))
    granted = []
    for t in range(0, 3000, 7):  # ask every 7 ms for 3 s
        if lim.acquire(t).allowed:
            granted.append(t)
    for start in range(0, 2000, 50):
        assert sum(start <= g < start + 1000 for g in granted) <= 10
    assert len(granted) >= 29


def test_denial_says_how_long_to_wait(r, keys):
    lim = Limiter(r, keys, "track", RateLimit(2, 1.0))
    assert lim.acquire(0).allowed
    d = lim.acquire(100)
    assert not d.allowed and d.why == "rate" and d.wait_ms == 400


def test_pause_holds_every_caller_and_only_grows(r, keys):
    lim = Limiter(r, keys, "track", RateLimit(100, 1.0))
    other = Limiter(r, keys, "track", RateLimit(100, 1.0))  # another worker
    lim.pause(5000, "HTTP 429", "rate_limit", now_ms=0)
    lim.pause(3000, "shorter", "rate_limit", now_ms=0)
    d = other.acquire(1000)
    assert not d.allowed and d.wait_ms == 4000 and d.why == "paused:HTTP 429"
    assert other.acquire(5000).allowed


def test_breaker_backs_off_together_and_probes_once(r, keys, monkeypatch):
    import shared.limiter as mod
    monkeypatch.setattr(mod, "compute_backoff", lambda attempt, **kw: 2.0 ** attempt)
    lim = Limiter(r, keys, "track", RateLimit(1000, 1.0))
    assert lim.failed(0) == (1, 2000)
    assert lim.failed(10) == (1, 2000)           # a failure already under way: no extra streak
    d = lim.acquire(1000)
    assert not d.allowed and d.why == "breaker" and d.wait_ms == 1000
    probe = lim.acquire(2000)
    assert probe.allowed and probe.probe
    assert lim.acquire(2001).why == "probing"     # everyone else waits for the probe
    assert lim.failed(2500) == (2, 2500 + 4000)   # the probe failed: longer wait
    lim.acquire(6500)
    lim.succeeded()
    assert lim.acquire(6502).allowed and not lim.acquire(6600).probe
