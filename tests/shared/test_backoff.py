import random

from shared.backoff import backoff_cap, compute_backoff, expected_total


def test_caps_grow_exponentially_then_stop():
    assert [backoff_cap(a, base=1, max_backoff=600) for a in range(1, 6)] == [1, 2, 4, 8, 16]
    assert backoff_cap(30, base=1, max_backoff=600) == 600
    assert backoff_cap(10_000, base=1, max_backoff=600) == 600  # no overflow
    assert backoff_cap(0) == 0


def test_full_jitter_stays_within_cap():
    rng = random.Random(7)
    for attempt in range(1, 40):
        d = compute_backoff(attempt, base=1, max_backoff=600, rng=rng)
        assert 0 <= d <= backoff_cap(attempt, base=1, max_backoff=600)


def test_jitter_spreads_delays():
    rng = random.Random(1)
    delays = {round(compute_backoff(10, rng=rng), 3) for _ in range(50)}
    assert len(delays) > 40


def test_no_jitter_is_the_cap():
    assert compute_backoff(3, base=2, jitter=False) == 8


def test_default_budget_outlasts_an_hour_long_outage():
    # Defaults: 40 attempts, base 1 s, cap 600 s. The expected total wait is
    # well past an hour, and even an unlucky draw (0.1th percentile) exceeds it.
    from shared.config import Settings
    s = Settings()
    attempts, base, cap = s.braze_retry_max_attempts, s.braze_retry_base_seconds, s.braze_retry_max_seconds
    assert expected_total(attempts, base=base, max_backoff=cap) > 2 * 3600
    rng = random.Random(42)
    totals = sorted(
        sum(compute_backoff(a, base=base, max_backoff=cap, rng=rng) for a in range(1, attempts + 1))
        for _ in range(2000)
    )
    assert totals[2] > 3600
