"""Per-10-second counters kept for an hour: how much happened when, for status and its chart.

Two series: ``delivered`` (objects Braze accepted; counted by the finish script
in the same step that settles a batch) and ``webhooks`` (webhook bodies the
consumers applied). Each bucket is a Redis string ``{P}:rate:<series>:<t>``,
``t`` the epoch second the bucket starts at, expiring after an hour and a bit.
This module builds and reads them; the finish script only INCRBYs the key it is
given.
"""

from __future__ import annotations

import redis

from shared.keys import Keys

DELIVERED = "delivered"
WEBHOOKS = "webhooks"
# Bucket width and how long a bucket is kept (s).
BUCKET = 10
TTL = 3_700
# The chart's span (s).
HOUR = 3_600


def bucket_of(now_s: float) -> int:
    return int(now_s) // BUCKET * BUCKET


def key(keys: Keys, series: str, now_s: float) -> str:
    return keys.rate(series, bucket_of(now_s))


def add(r: redis.Redis, keys: Keys, series: str, n: int, now_s: float) -> None:
    """Count ``n`` in the bucket of ``now_s`` (one round trip).

    Best effort: the count is for the status page only, so a Redis that refuses it
    (full, read-only, gone) costs a bucket, never the work it counts.
    """
    if n <= 0:
        return
    k = key(keys, series, now_s)
    p = r.pipeline(transaction=False)
    p.incrby(k, n)
    p.expire(k, TTL)
    try:
        p.execute()
    except (redis.RedisError, OSError):
        pass


def series(r: redis.Redis, keys: Keys, name: str, now_s: float, span: int = HOUR) -> list[tuple[int, float]]:
    """``(bucket start, per second)`` for every whole bucket of the last ``span`` seconds, oldest first."""
    last = bucket_of(now_s) - BUCKET  # the current bucket is still filling
    starts = list(range(last - span + BUCKET, last + 1, BUCKET))
    values = r.mget([keys.rate(name, t) for t in starts])
    return [(t, int(v or 0) / BUCKET) for t, v in zip(starts, values)]


def per_second(r: redis.Redis, keys: Keys, name: str, now_s: float, window: int = 60) -> float:
    """The average rate over the last ``window`` seconds of whole buckets."""
    points = series(r, keys, name, now_s, span=window)
    return round(sum(v for _, v in points) / len(points), 1) if points else 0.0
