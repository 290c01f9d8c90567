"""The one send policy (workers/sending.py): gate, token, and what an answer means for every worker."""

import pytest

from shared.clock import FakeClock
from shared.config import RateLimit
from shared.limiter import Limiter
from workers import braze as b
from workers.sending import Held, Lost, Sender


@pytest.fixture
def clock():
    return FakeClock(1_700_000_000.0)


def make(r, keys, clock, *, recovered=None, rate=RateLimit(1000, 1.0), **kw):
    lim = Limiter(r, keys, "track", rate, retry_base=1.0, probe_max=kw.pop("probe_max", 15.0),
                  pause_max=kw.pop("pause_max", 3600.0))
    return Sender(lim, clock, auth_retry_seconds=60, what="/users/track",
                  on_recovered=(lambda: recovered.append(1)) if recovered is not None else (lambda: None), **kw)


def ms(clock):
    return int(clock.now() * 1000)


def test_a_delivered_answer_passes_through_and_the_gate_stays_open(r, keys, clock):
    s = make(r, keys, clock)
    assert s.send(lambda: b.Delivered()) == b.Delivered()
    assert s.gate().wait_ms == 0


def test_429_closes_the_gate_for_every_sender_until_the_reset(r, keys, clock):
    s, other = make(r, keys, clock), make(r, keys, clock)
    s.send(lambda: b.RateLimited(clock.now() + 3))
    g = other.gate()
    assert 2900 <= g.wait_ms <= 3000
    assert other.wait_after(b.RateLimited(0)) == ms(clock) + g.wait_ms
    clock.advance(3.01)
    assert other.gate().wait_ms == 0


def test_a_pause_is_capped_whatever_the_header_said(r, keys, clock):
    s = make(r, keys, clock, pause_max=3600.0)
    s.send(lambda: b.RateLimited(clock.now() + 10 ** 9))  # a reset thousands of years away
    assert s.gate().wait_ms == 3_600_000


def test_auth_failure_pauses_everyone_loudly(r, keys, clock, caplog):
    s = make(r, keys, clock)
    s.send(lambda: b.AuthFailure("HTTP 401: Invalid API key"))
    assert s.gate().wait_ms == 60_000
    assert r.hget(keys.pause("track"), "kind") == b"auth"
    assert any(rec.levelname == "CRITICAL" and "BRAZE_API_KEY" in rec.getMessage() for rec in caplog.records)


def test_failures_open_the_breaker_and_only_one_probe_goes(r, keys, clock):
    recovered = []
    s, other = make(r, keys, clock, recovered=recovered), make(r, keys, clock)
    s.send(lambda: b.Retryable("HTTP 503"))
    clock.advance(2.0)                   # past the first breaker wait (at most 1 s)
    assert s.gate().probe and other.gate().probe
    calls = []

    def probe():
        calls.append("probe")
        assert isinstance(other.send(lambda: b.Delivered()), Held)  # everyone else waits for it
        return b.Delivered()

    s.send(probe)
    assert calls == ["probe"] and recovered == [1]
    assert not s.gate().probe and s.gate().wait_ms == 0


def test_the_probe_interval_is_capped_however_long_the_outage(r, keys, clock):
    s = make(r, keys, clock, probe_max=15.0)
    for _ in range(30):  # a long outage: every probe fails
        clock.advance(16.0)
        assert s.gate().wait_ms == 0
        s.send(lambda: b.Retryable("HTTP 500"))
        assert s.gate().wait_ms <= 15_000


def test_a_long_limiter_wait_holds_the_work_instead_of_sleeping(r, keys, clock):
    s = make(r, keys, clock, rate=RateLimit(1, 10.0), max_token_wait_ms=2_000)
    assert s.send(lambda: b.Delivered()) == b.Delivered()
    held = s.send(lambda: pytest.fail("sent past the limit"))
    assert isinstance(held, Held) and held.why == "rate" and held.until_ms > ms(clock) + 2_000


def test_short_rate_waits_are_slept_through(r, keys, clock):
    s = make(r, keys, clock, rate=RateLimit(10, 1.0))
    t0 = clock.now()
    for _ in range(5):
        assert s.send(lambda: b.Delivered()) == b.Delivered()
    assert clock.now() - t0 == pytest.approx(0.4, abs=0.01)  # spaced 100 ms apart, on the fake clock


def test_work_no_longer_ours_after_the_limiter_wait_is_not_sent(r, keys, clock):
    s = make(r, keys, clock, rate=RateLimit(10, 1.0))
    s.send(lambda: b.Delivered())
    asked = []

    def keep():
        asked.append(clock.now())
        return False

    t0 = clock.now()
    assert isinstance(s.send(lambda: pytest.fail("sent work it no longer holds"), keep=keep), Lost)
    assert asked == [pytest.approx(t0 + 0.1, abs=0.01)]   # asked after the limiter's wait, right before sending
    assert s.gate().wait_ms == 0 and r.hlen(keys.breaker("track")) == 0  # no failure for anyone
