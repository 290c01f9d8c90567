"""Per-10-second counters over the last hour (shared/rates.py)."""

import redis

from shared import rates


def test_counts_land_in_their_bucket_and_read_back_per_second(r, keys):
    now = 1_700_000_000.0
    rates.add(r, keys, rates.DELIVERED, 150, now - 25)   # two buckets ago
    rates.add(r, keys, rates.DELIVERED, 50, now - 25)
    rates.add(r, keys, rates.WEBHOOKS, 30, now - 15)
    rates.add(r, keys, rates.DELIVERED, 999, now)         # the current bucket is still filling: not read
    points = dict(rates.series(r, keys, rates.DELIVERED, now))
    assert len(points) == 360
    assert points[rates.bucket_of(now - 25)] == 20.0     # 200 objects in 10 s
    assert rates.bucket_of(now) not in points
    assert rates.per_second(r, keys, rates.DELIVERED, now) == round(200 / 60, 1)
    assert rates.per_second(r, keys, rates.WEBHOOKS, now) == 0.5


def test_buckets_expire_after_about_an_hour(r, keys):
    rates.add(r, keys, rates.WEBHOOKS, 1, 1_700_000_000)
    ttl = r.ttl(rates.key(keys, rates.WEBHOOKS, 1_700_000_000))
    assert rates.HOUR < ttl <= rates.TTL


def test_a_refused_count_is_not_an_error(keys):
    gone = redis.Redis(port=1, socket_connect_timeout=0.2)
    rates.add(gone, keys, rates.WEBHOOKS, 5, 1_700_000_000)  # nothing raised: the counted work stands
