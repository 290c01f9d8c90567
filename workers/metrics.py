"""Prometheus metrics of one worker process.

Every worker process counts what *it* did (single-process prometheus_client,
its own registry :data:`REGISTRY`) and serves it on
``LINESYNC_WORKER_METRICS_PORT`` (workers/metrics_server.py; workers/engine.py starts it):

  linesync_braze_request_duration_seconds{endpoint,status}  Braze request latency (histogram);
        endpoint /users/track, /users/identify, /users/merge; status the HTTP code, or "error"
        (timeout, connection error)
  linesync_braze_requests_in_flight{endpoint}       Braze requests waiting for their answer
  linesync_braze_track_batch_objects                objects per /users/track request (histogram)
  linesync_braze_limiter_wait_seconds{limiter}      how long a sender waited for its rate slot (histogram)
  linesync_braze_pauses_total{limiter,kind}         pauses this process set for every worker
                                                    (kind rate_limit, auth, config)
  linesync_braze_gate_closed{limiter}               1 while this process sees delivery held (pause, breaker)
  linesync_braze_breaker_failures_total{limiter}    5xx / timeouts / connection errors that fed the breaker
  linesync_worker_delivered_objects_total           /users/track objects Braze accepted from this process
  linesync_worker_dead_lettered_total{kind}         items this process moved to the dead letters
  linesync_worker_cluster_exporter                  1 in the one process exporting the cluster-wide figures
  process_*, python_*                               prometheus_client's process and runtime collectors

``limiter`` is ``track`` (/users/track) or ``identify`` (/users/identify and
/users/merge share Braze's budget), as in ``linesync_braze_paused{limiter,kind}``; ``endpoint``
is always a Braze path.
The cluster-wide figures read from Redis (backlog, dead letters, pauses,
resync, live workers) are added by workers/cluster_metrics.py, in one process only.

Hot path: a request costs two gauge updates and one histogram observation
(~1-2 µs in all), label children are resolved once; nothing here calls Redis.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry()
for _c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):  # the same collectors as prometheus' default
    REGISTRY.register(_c)

ENDPOINTS = ("/users/track", "/users/identify", "/users/merge")
OTHER = "other"    # endpoint label of any other path
ERROR = "error"    # status label of a request that got no HTTP answer
PAUSE_KINDS = ("rate_limit", "auth", "config")
LIMITERS = ("track", "identify")
DEAD_LETTER_KINDS = ("webhook", "track", "track_event", "identify", "merge")

# Braze answers in ~100-300 ms; the read timeout is BRAZE_TIMEOUT_SECONDS (10 s by default).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
# BRAZE_TRACK_BATCH_SIZE is 75 by default (Braze's maximum).
BATCH_BUCKETS = (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 75, 100)
# A sender reserves a slot at most 2 s away (workers/sending.py MAX_TOKEN_WAIT_MS).
WAIT_BUCKETS = (0.0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)

REQUEST_SECONDS = Histogram(
    "linesync_braze_request_duration_seconds", "Braze requests: time to the answer, by endpoint and HTTP status",
    ["endpoint", "status"], buckets=LATENCY_BUCKETS, registry=REGISTRY)
IN_FLIGHT = Gauge("linesync_braze_requests_in_flight", "Braze requests waiting for their answer",
                  ["endpoint"], registry=REGISTRY)
TRACK_BATCH = Histogram("linesync_braze_track_batch_objects", "Objects per /users/track request",
                        buckets=BATCH_BUCKETS, registry=REGISTRY)
LIMITER_WAIT = Histogram("linesync_braze_limiter_wait_seconds",
                         "How long a sender waited for its slot of the cluster-wide rate limit",
                         ["limiter"], buckets=WAIT_BUCKETS, registry=REGISTRY)
PAUSES = Counter("linesync_braze_pauses", "Pauses this process set for every worker (429, auth, config)",
                 ["limiter", "kind"], registry=REGISTRY)
GATE_CLOSED = Gauge("linesync_braze_gate_closed",
                    "1 while this process sees delivery held for every worker (pause or open breaker)",
                    ["limiter"], registry=REGISTRY)
BREAKER_FAILURES = Counter("linesync_braze_breaker_failures",
                           "5xx, timeouts and connection errors that opened the shared breaker",
                           ["limiter"], registry=REGISTRY)
DELIVERED = Counter("linesync_worker_delivered_objects", "/users/track objects Braze accepted from this process",
                    registry=REGISTRY)
DEAD_LETTERED = Counter("linesync_worker_dead_lettered", "Items this process moved to the dead letters, by kind",
                        ["kind"], registry=REGISTRY)
CLUSTER_EXPORTER = Gauge("linesync_worker_cluster_exporter",
                         "1 if this process exports the cluster-wide figures read from Redis",
                         registry=REGISTRY)


class _Endpoint:
    """One Braze endpoint's label children, resolved once (``labels()`` takes a lock and a dict lookup)."""

    __slots__ = ("name", "in_flight", "_by_status")

    def __init__(self, name: str):
        self.name = name
        self.in_flight = IN_FLIGHT.labels(endpoint=name)
        self._by_status: dict = {}

    def start(self) -> float:
        self.in_flight.inc()
        return time.perf_counter()

    def finish(self, started: float, status: int | str) -> None:
        self.in_flight.dec()
        child = self._by_status.get(status)
        if child is None:
            child = self._by_status[status] = REQUEST_SECONDS.labels(endpoint=self.name, status=str(status))
        child.observe(time.perf_counter() - started)


_ENDPOINTS = {name: _Endpoint(name) for name in (*ENDPOINTS, OTHER)}
_LIMITER_WAIT = {name: LIMITER_WAIT.labels(limiter=name) for name in LIMITERS}
_GATE = {name: GATE_CLOSED.labels(limiter=name) for name in LIMITERS}
# Every series a dashboard or alert reads exists (at 0) from the first scrape.
for _name in LIMITERS:
    BREAKER_FAILURES.labels(limiter=_name)
    for _kind in PAUSE_KINDS:
        PAUSES.labels(limiter=_name, kind=_kind)
for _kind in DEAD_LETTER_KINDS:
    DEAD_LETTERED.labels(kind=_kind)


def braze_endpoint(path: str) -> _Endpoint:
    """The metrics of requests to ``path`` (any path outside :data:`ENDPOINTS` counts as ``other``)."""
    return _ENDPOINTS.get(path) or _ENDPOINTS[OTHER]


def track_batch(objects: int) -> None:
    TRACK_BATCH.observe(objects)


def limiter_waited(limiter: str, seconds: float) -> None:
    child = _LIMITER_WAIT.get(limiter) or LIMITER_WAIT.labels(limiter=limiter)
    child.observe(seconds)


def gate_closed(limiter: str, closed: bool) -> None:
    child = _GATE.get(limiter) or GATE_CLOSED.labels(limiter=limiter)
    child.set(1 if closed else 0)


def paused(limiter: str, kind: str) -> None:
    PAUSES.labels(limiter=limiter, kind=kind).inc()


def breaker_failed(limiter: str) -> None:
    BREAKER_FAILURES.labels(limiter=limiter).inc()


def delivered(objects: int) -> None:
    if objects:
        DELIVERED.inc(objects)


def dead_lettered(kinds: Iterable[str]) -> None:
    """Count letters by kind: ``kinds`` has one entry per letter."""
    for kind in kinds:
        DEAD_LETTERED.labels(kind=kind).inc()


def exporting(on: bool) -> None:
    CLUSTER_EXPORTER.set(1 if on else 0)


class _Chain(Collector):
    """Another registry's metrics, inside a registry of one process's /metrics."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


def registry_with(*collectors: Collector) -> CollectorRegistry:
    """What one engine's /metrics serves: this process's metrics plus ``collectors``."""
    out = CollectorRegistry()
    out.register(_Chain(REGISTRY))
    for c in collectors:
        out.register(c)
    return out
