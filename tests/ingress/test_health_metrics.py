"""/healthz, /readyz and /metrics (in-process, single registry)."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families



def samples(client) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    out = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def requests_total(snap, outcome):
    return snap[("linesync_ingress_requests_total", (("outcome", outcome),))]


def test_healthz(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_readyz_when_redis_answers(client):
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}


def test_metrics_count_outcomes_events_and_latency(client, post, follow_body, two_event_body):
    before = samples(client)
    post(follow_body)
    post(two_event_body)
    post(follow_body, signature=None)
    post(b"[]")
    post(b'{"destination":"U1","events":[]}')
    after = samples(client)

    def delta(outcome):
        return requests_total(after, outcome) - requests_total(before, outcome)

    assert delta("accepted") == 2
    assert delta("unauthorized") == 1
    assert delta("invalid") == 1
    assert delta("verify_only") == 1
    assert delta("too_large") == 0 and delta("unavailable") == 0
    events = ("linesync_ingress_events_total", ())
    assert after[events] - before[events] == 3
    count = ("linesync_ingress_request_duration_seconds_count", ())
    assert after[count] - before[count] == 5
    assert ("linesync_ingress_request_duration_seconds_bucket", (("le", "2.0"),)) in after


def test_metrics_text_has_every_outcome_from_the_start(client):
    text = client.get("/metrics").get_data(as_text=True)
    for outcome in ("accepted", "unauthorized", "too_large", "length_required", "invalid", "unavailable",
                    "verify_only", "redis_full"):
        assert re.search(rf'linesync_ingress_requests_total\{{outcome="{outcome}"\}}', text)
