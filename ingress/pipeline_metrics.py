"""Pipeline health in Prometheus, read from Redis when /metrics is scraped.

The workers keep their figures in Redis (the same ones `linesync status`
shows), so any ingress can export them: consumer lag, outbox backlog, dead
letters, Braze pauses and failure streaks, event counters. A scrape costs a
handful of Redis calls; if Redis does not answer, ``linesync_redis_up`` is 0
and the other series are absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import outbox, status
from shared.keys import Keys
from shared.redis_conn import REDIS_DOWN

# Counters of the stats hash exported as linesync_<name>_total.
COUNTERS = {
    "bodies": "webhook bodies consumed",
    "transitions": "subscription state changes applied",
    "duplicates": "events dropped as redeliveries (same webhookEventId)",
    "stale": "events older than the state already known",
    "unchanged": "newer events that did not change the state",
    "delivered_objects": "objects Braze accepted",
    "batches_sent": "batches settled",
    "dead_lettered": "items moved to the dead letters",
}


class PipelineCollector(Collector):
    def __init__(self, get_client: Callable[[], redis.Redis], keys: Keys):
        self.get_client, self.keys = get_client, keys
        self.r: redis.Redis | None = None

    def collect(self) -> Iterator:
        up = GaugeMetricFamily("linesync_redis_up", "1 if Redis answered this scrape")
        try:
            self.r = self.get_client()  # may connect: inside the try
            families = list(self._families(time.time()))
        except (REDIS_DOWN + (redis.RedisError,)):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, now: float) -> Iterator:
        q = status.queue(self.r, self.keys, now)
        yield _gauge("linesync_webhook_stream_length", "bodies in the webhook stream (unfinished)", q["stream_length"])
        yield _gauge("linesync_webhook_unconsumed", "bodies not yet read by a consumer", q["lag"] or 0)
        yield _gauge("linesync_webhook_in_processing", "bodies read but not yet applied", q["pending"])
        yield _gauge("linesync_webhook_oldest_unconsumed_age_seconds", "age of the oldest unread body",
                     q["oldest_unconsumed_age_s"] or 0)
        yield _gauge("linesync_rejected_bodies", "signed bodies rejected as invalid (kept)", q["rejected_bodies"])
        for name, value in outbox.sizes(self.r, self.keys).items():
            yield _gauge(f"linesync_outbox_{name}", f"outbox: {name.replace('_', ' ')}", value)
        yield _gauge("linesync_dead_letters", "dead letters waiting for an operator", self.r.xlen(self.keys.dlq))
        yield _gauge("linesync_profiles_known", "LINE users with a known state", self.r.hlen(self.keys.state))
        paused = GaugeMetricFamily("linesync_braze_paused", "1 while every worker waits (429 or auth)",
                                   labels=["endpoint", "kind"])
        streak = GaugeMetricFamily("linesync_braze_failure_streak", "consecutive 5xx/timeout windows",
                                   labels=["endpoint"])
        for endpoint, st in status.limits(self.r, self.keys, now).items():
            paused.add_metric([endpoint, st["pause_kind"] or ""], 1 if st["paused"] else 0)
            streak.add_metric([endpoint], st["failure_streak"])
        yield paused
        yield streak
        stats = {k.decode(): int(v) for k, v in self.r.hgetall(self.keys.stats).items()}
        for name, help_ in COUNTERS.items():
            c = CounterMetricFamily(f"linesync_{name}", help_)
            c.add_metric([], stats.get(name, 0))
            yield c
        events = CounterMetricFamily("linesync_line_events", "LINE events consumed, by type", labels=["type"])
        for k, v in sorted(stats.items()):
            if k.startswith("events:"):
                events.add_metric([k.split(":", 1)[1]], v)
        yield events


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, help_)
    g.add_metric([], value)
    return g
