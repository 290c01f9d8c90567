"""The pipeline's cluster-wide health, read from Redis when /metrics is scraped.

These figures are the same whichever process reads them (consumer lag,
outbox backlog and its age, dead letters, Braze pauses and failure streaks,
Redis memory, event counters, live workers, resync progress), so ONE process exports them: the
worker process holding the lease ``{P}:metrics:exporter`` (taken and renewed by
its engine's heartbeat, workers/engine.py). Every other worker process, and the
ingress, export only their own process's metrics; sums over replicas stay
right and Redis is read once per scrape interval, not once per replica.

A scrape costs about a dozen Redis calls. If Redis does not answer,
``linesync_redis_up`` is 0 and the other series are absent; the exporter keeps
its lease meanwhile (it cannot learn otherwise), so the alert on it fires.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared import outbox, state, status
from shared.keys import Keys
from shared.redis_conn import REDIS_DOWN
from shared.resync_runs import FAILED, last_completed, resync_status
from shared.clock import redis_now
from workers.metrics import PAUSE_KINDS

# Counters of the stats hash exported as linesync_<name>_total. The hash's ``delivered_objects``
# and ``dead_lettered`` are not: every worker process counts those itself
# (linesync_worker_delivered_objects_total, linesync_worker_dead_lettered_total{kind}), one name per count.
COUNTERS = {
    "bodies": "webhook bodies consumed",
    "transitions": "subscription state changes applied",
    "duplicates": "events dropped as redeliveries (same webhookEventId)",
    "stale": "events older than the state already known",
    "unchanged": "newer events that did not change the state",
    "batches_sent": "batches settled",
}
# linesync_braze_paused has one series per limiter and kind (workers/metrics.py PAUSE_KINDS), 1 for
# the kind of the pause in force.


class ClusterCollector(Collector):
    """Yields the cluster-wide families while ``active()`` (this process holds the exporter lease)."""

    def __init__(self, get_client: Callable[[], redis.Redis], keys: Keys, *,
                 active: Callable[[], bool] = lambda: True):
        self.get_client, self.keys, self.active = get_client, keys, active
        self.r: redis.Redis | None = None

    def collect(self) -> Iterator:
        if not self.active():
            return
        up = GaugeMetricFamily("linesync_redis_up", "1 if Redis answered this scrape")
        try:
            self.r = self.get_client()  # may connect: inside the try
            families = list(self._families(redis_now(self.r)))
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
        yield _gauge("linesync_outbox_oldest_pending_age_seconds",
                     "how long the oldest profile waiting in the outbox has waited (0: none waits)",
                     self._oldest_pending_age(now))
        yield from self._memory()
        yield _gauge("linesync_dead_letters", "dead letters waiting for an operator", self.r.xlen(self.keys.dlq))
        yield _gauge("linesync_profiles_known", "LINE users with a known state", state.count(self.r, self.keys))
        paused = GaugeMetricFamily("linesync_braze_paused",
                                   "1 while every worker waits, for the pause's kind (rate_limit, auth, config)",
                                   labels=["limiter", "kind"])
        streak = GaugeMetricFamily("linesync_braze_failure_streak", "consecutive 5xx/timeout windows",
                                   labels=["limiter"])
        for limiter, st in status.limits(self.r, self.keys, now).items():
            for kind in PAUSE_KINDS:
                paused.add_metric([limiter, kind], 1 if st["paused"] and st["pause_kind"] == kind else 0)
            streak.add_metric([limiter], st["failure_streak"])
        yield paused
        yield streak
        workers = status.workers(self.r, self.keys, now)
        yield _gauge("linesync_workers_alive", "worker processes holding their lease",
                     sum(1 for w in workers if w["alive"]))
        yield from self._resync()
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

    def _oldest_pending_age(self, now: float) -> float:
        oldest = outbox.oldest_pending_ms(self.r, self.keys)
        return max(0.0, now - oldest / 1000) if oldest is not None else 0.0

    def _memory(self) -> Iterator:
        """Redis's memory and its limit (INFO memory): the ingress refuses webhooks near the limit."""
        info = self.r.info("memory")
        yield _gauge("linesync_redis_used_memory_bytes", "Redis used_memory", int(info.get("used_memory", 0) or 0))
        yield _gauge("linesync_redis_maxmemory_bytes", "Redis maxmemory (0: no limit)",
                     int(info.get("maxmemory", 0) or 0))

    def _resync(self) -> Iterator:
        """The running resync's progress, whether the last finished run failed, and when the last
        completed one finished (absent: none yet)."""
        st = resync_status(self.r, self.keys)
        current = st["current"] or {}
        yield _gauge("linesync_resync_last_failed", "1 if the last finished follower resync failed",
                     1 if (st["last"] or {}).get("status") == FAILED else 0)
        yield _gauge("linesync_resync_running", "1 while a follower resync runs", 1 if current else 0)
        yield _gauge("linesync_resync_pages", "pages of LINE's follower list done by the running resync",
                     current.get("pages", 0))
        yield _gauge("linesync_resync_followers", "followers listed so far by the running resync",
                     current.get("followers", 0))
        last = last_completed(self.r, self.keys)
        if last is not None and last.get("finished_ms"):
            yield _gauge("linesync_resync_last_completed_timestamp_seconds",
                         "when the last completed resync finished (Unix time)", last["finished_ms"] / 1000)
            yield _gauge("linesync_resync_last_completed_followers", "followers listed by the last completed resync",
                         last.get("followers", 0))


def _gauge(name: str, help_: str, value: float) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, help_)
    g.add_metric([], value)
    return g
