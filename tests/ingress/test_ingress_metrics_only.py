"""The ingress no longer exports the cluster-wide figures: one worker process does (workers/cluster_metrics.py)."""

from prometheus_client.parser import text_string_to_metric_families

from shared import webhook_queue


def test_the_ingress_exports_only_its_own_metrics(client, r, keys):
    webhook_queue.ensure_group(r, keys)
    webhook_queue.enqueue(r, keys, b'{"destination":"U","events":[]}')
    r.xadd(keys.dlq, {"kind": "track", "reason": "x", "payload": "{}"})
    text = client.get("/metrics").get_data(as_text=True)
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert "linesync_ingress_requests" in names
    assert not names & {"linesync_redis_up", "linesync_webhook_unconsumed", "linesync_dead_letters",
                        "linesync_braze_paused", "linesync_transitions"}
