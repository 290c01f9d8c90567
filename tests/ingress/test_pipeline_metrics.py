"""Pipeline health on /metrics, read from Redis at scrape time."""

from prometheus_client.parser import text_string_to_metric_families

from shared import state, webhook_queue
from shared.events import make_version
from shared.state import Change


def samples(client) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_backlog_dead_letters_and_pauses_are_exported(client, r, keys):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, b'{"destination":"U","events":[]}')
    state.apply(r, keys, [Change("U1", make_version(1, 1, 0, 0), "S", None)], now_ms=1, dedupe_ttl=60,
                counters={"events:follow": 3})
    r.xadd(keys.dlq, {"kind": "track", "reason": "x", "payload": "{}"})
    r.hset(keys.pause("track"), mapping={"until": 10**13, "reason": "HTTP 401", "kind": "auth"})
    m = samples(client)
    assert m[("linesync_redis_up", ())] == 1
    assert m[("linesync_webhook_unconsumed", ())] == 1
    assert m[("linesync_outbox_pending_profiles", ())] == 1
    assert m[("linesync_dead_letters", ())] == 1
    assert m[("linesync_braze_paused", (("endpoint", "track"), ("kind", "auth")))] == 1
    assert m[("linesync_line_events_total", (("type", "follow"),))] == 3
    assert m[("linesync_transitions_total", ())] == 1


def test_redis_down_is_a_metric_not_an_error(settings):
    from ingress import create_app
    client = create_app(settings.replace(redis_url="redis://127.0.0.1:1/0")).test_client()
    resp = client.get("/metrics")
    assert resp.status_code == 200
    m = samples(client)
    assert m[("linesync_redis_up", ())] == 0
    assert ("linesync_dead_letters", ()) not in m
