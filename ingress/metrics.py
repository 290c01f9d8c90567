"""Prometheus metrics of the ingress, and ``GET /metrics``.

Under gunicorn several worker processes serve requests; with
``PROMETHEUS_MULTIPROC_DIR`` set (``ingress/gunicorn_conf.py`` sets it up)
each process writes its samples to files there and ``/metrics`` sums them, so
any worker's answer covers all of them. The variable must be set before
``prometheus_client`` is first imported.

  linesync_ingress_requests_total{outcome}       POST /line/events by outcome
  linesync_ingress_events_total                  events in bodies that were queued
  linesync_ingress_signatures_total{channel,secret} bodies whose signature verified, by channel and by
                                                 which of its secrets matched (current, previous: a
                                                 rotation is over once previous stays flat)
  linesync_ingress_request_duration_seconds      POST /line/events latency (histogram)
  linesync_ingress_connections_cut_total{reason} connections closed by the worker before a request
                                                 was in: read_timeout (408), headers_too_large (431),
                                                 length_required (411, a chunked body),
                                                 bad_framing (400, another Transfer-Encoding)

Only the ingress's own figures: the pipeline's cluster-wide health is exported
by one worker process (workers/cluster_metrics.py).
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess

# Every outcome of POST /line/events (the label values of the request counter).
ACCEPTED = "accepted"          # 200, body queued
VERIFY_ONLY = "verify_only"    # 200, events: [] (LINE's "Verify" button), nothing queued
UNAUTHORIZED = "unauthorized"  # 401, signature missing or wrong
TOO_LARGE = "too_large"        # 413, body over INGRESS_MAX_BODY_BYTES
LENGTH_REQUIRED = "length_required"  # 411, a body without Content-Length (chunked); served by another server
INVALID = "invalid"            # 400, signed but not the envelope; body kept in the rejected stream
UNAVAILABLE = "unavailable"    # 503, Redis could not take the body
REDIS_FULL = "redis_full"      # 503, Redis's memory is above INGRESS_MEMORY_HIGH_WATERMARK; nothing stored
UNKNOWN_CHANNEL = "unknown_channel"  # 404, /line/events/<name> names no channel; nothing read or stored
OUTCOMES = (ACCEPTED, VERIFY_ONLY, UNAUTHORIZED, TOO_LARGE, LENGTH_REQUIRED, INVALID, UNAVAILABLE, REDIS_FULL,
            UNKNOWN_CHANNEL)
# Why ingress/buffered_worker.py closed a connection before its request was in.
CUT_REASONS = ("read_timeout", "headers_too_large", "length_required", "bad_framing")

# LINE gives up after 2 s: the buckets are dense below that.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

REQUESTS = Counter(
    "linesync_ingress_requests", "POST /line/events requests by outcome", ["outcome"]
)
EVENTS = Counter("linesync_ingress_events", "Events in webhook bodies that were queued")
SIGNATURES = Counter(
    "linesync_ingress_signatures", "Webhook bodies whose signature verified, by channel and matching secret",
    ["channel", "secret"],
)
LATENCY = Histogram(
    "linesync_ingress_request_duration_seconds",
    "Time to answer POST /line/events",
    buckets=LATENCY_BUCKETS,
)
CUT = Counter(
    "linesync_ingress_connections_cut",
    "Connections closed before their request was in (slow or stalled clients, oversized headers)",
    ["reason"],
)
# Resolved once: labels() costs a lock and a dict lookup per call. Also makes every
# outcome visible (at 0) from the first scrape.
_BY_OUTCOME = {outcome: REQUESTS.labels(outcome=outcome) for outcome in OUTCOMES}
_CUT_BY_REASON = {reason: CUT.labels(reason=reason) for reason in CUT_REASONS}

bp = Blueprint("metrics", __name__)


def record(outcome: str, seconds: float, events: int = 0) -> None:
    _BY_OUTCOME[outcome].inc()
    LATENCY.observe(seconds)
    if events:
        EVENTS.inc(events)


_SIGNATURE_CHILDREN: dict[tuple[str, str], object] = {}


def count_signature(channel: str, secret: str) -> None:
    """A verified body of ``channel``, by its ``current`` or ``previous`` secret."""
    child = _SIGNATURE_CHILDREN.get((channel, secret))
    if child is None:
        child = _SIGNATURE_CHILDREN[(channel, secret)] = SIGNATURES.labels(channel=channel, secret=secret)
    child.inc()


def count_cut_connection(reason: str) -> None:
    _CUT_BY_REASON[reason].inc()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


@bp.get("/metrics")
def metrics() -> Response:
    registry = REGISTRY
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
