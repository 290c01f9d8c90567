"""deploy/prometheus and deploy/grafana read as the on-call person needs them.

Every alert has a runbook section in docs/production.md, keeps the install's
``job`` label through its aggregations, and has promtool unit tests where it
fires and where it stays quiet (the tests themselves run in tests/test_deploy.py
with promtool). Every dashboard query selects ``$job``; per-process queries
also ``$instance``; one unit per axis. The metric names are checked against
the code in tests/test_deploy.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "linesync.json"
PRODUCTION = ROOT / "docs" / "production.md"

AGGREGATIONS = r"\b(sum|max|min|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)\b"


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for m in re.finditer(r"^#+\s+(.+)$", markdown, re.M):
        out.add(re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def test_every_alert_links_its_runbook_section():
    doc = PRODUCTION.read_text()
    runbook = doc[doc.index("## 10. Runbook"):]
    have = anchors(runbook)
    for rule in rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/production.md" and anchor == rule["alert"].lower(), url
        assert anchor in have, f"no Runbook section for {rule['alert']}"
        section = runbook[runbook.index(f"### {rule['alert']}\n"):]
        section = section[: section.find("\n### ", 4) if "\n### " in section[4:] else None]
        for part in ("**Means**", "**Check**", "**Do**"):
            assert part in section, (rule["alert"], part)


def test_every_aggregation_keeps_the_job_label():
    for rule in rules():
        expr = rule["expr"]
        found = list(re.finditer(AGGREGATIONS + r"\s*(by\s*\(([^)]*)\))?\s*\(", expr))
        assert found, rule["alert"]
        for m in found:
            assert m.group(3) is not None and "job" in [x.strip() for x in m.group(3).split(",")], \
                (rule["alert"], m.group(0))
        for m in re.finditer(r"\b(on|ignoring)\s*\(([^)]*)\)", expr):
            assert m.group(1) == "on" and "job" in m.group(2), (rule["alert"], m.group(0))


def test_every_alert_is_tested_firing_and_quiet_with_its_job():
    names = {r["alert"] for r in rules()}
    fires, quiet = set(), set()
    for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            if check.get("exp_alerts"):
                fires.add(check["alertname"])
                for a in check["exp_alerts"]:
                    assert a["exp_labels"].get("job"), check
                    assert a["exp_annotations"]["runbook_url"].endswith("#" + check["alertname"].lower())
            else:
                quiet.add(check["alertname"])
    assert names - fires == set()
    assert names - quiet == set()


def test_all_workers_dead_pages_once():
    """The case where every worker dies expects LinesyncNoLiveWorkers and nothing else (no LinesyncRedisDown)."""
    case = next(c for c in yaml.safe_load(RULE_TESTS.read_text())["tests"]
                if any(s["values"].endswith("stale") for s in c["input_series"]))
    at_10m = {c["alertname"]: bool(c.get("exp_alerts")) for c in case["alert_rule_test"] if c["eval_time"] == "10m"}
    assert at_10m.pop("LinesyncNoLiveWorkers") is True
    assert set(at_10m) == {r["alert"] for r in rules()} - {"LinesyncNoLiveWorkers"}
    assert not any(at_10m.values())


# -- the dashboard ------------------------------------------------------------------------------

SELECTOR = re.compile(r'(?<![\w$:{."])((?:linesync|process)_[\w:]*)(\{[^}]*\})?')
RATE_UNITS = {"ops", "reqps", "percentunit"}  # percentunit: a rate of CPU seconds


def panels() -> list[dict]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def cluster_metric_names(r, keys) -> set[str]:
    from workers.cluster_metrics import ClusterCollector

    r.lpush(keys.resync_history, json.dumps({"id": "x", "status": "completed", "finished_ms": 1, "followers": 1}))
    return {fam.name for fam in ClusterCollector(lambda: r, keys).collect()}


def test_the_dashboard_has_job_and_instance_variables():
    variables = {v["name"]: v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= set(variables)
    assert "$job" in variables["instance"]["definition"]
    assert variables["instance"]["includeAll"] and variables["instance"]["allValue"] == ".*"


def test_every_query_selects_the_job_and_per_process_queries_the_instance(r, keys):
    cluster = cluster_metric_names(r, keys) | {"linesync_worker_cluster_exporter"}
    for p in panels():
        for t in p["targets"]:
            selectors = SELECTOR.findall(t["expr"])
            assert selectors, (p["title"], t["expr"])
            for name, labels in selectors:
                assert 'job="$job"' in labels, (p["title"], t["expr"])
                if name not in cluster:
                    assert 'instance=~"$instance"' in labels, (p["title"], name)


def test_one_unit_per_panel_and_per_axis():
    for p in panels():
        defaults = p["fieldConfig"]["defaults"]
        assert defaults.get("unit"), p["title"]
        assert not any(prop["id"] == "unit" for o in p["fieldConfig"].get("overrides", [])
                       for prop in o.get("properties", [])), p["title"]
        for t in p["targets"]:
            expr = t["expr"]
            assert not re.search(r"\*\s*1000\b", expr), (p["title"], "rescaled into another unit")
            per_second = "rate(" in expr and "histogram_quantile" not in expr and "/" not in expr
            assert per_second == (defaults["unit"] in RATE_UNITS), (p["title"], defaults["unit"], expr)


def test_ingress_latency_is_graphed_against_lines_2_s():
    (panel,) = [p for p in panels() if any("linesync_ingress_request_duration_seconds_bucket" in t["expr"]
                                           for t in p["targets"])]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"
    assert all(t["expr"].startswith("histogram_quantile(") for t in panel["targets"])
    assert {t["legendFormat"] for t in panel["targets"]} >= {"p50", "p99"}
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert any(s["value"] == 2 for s in steps)


# -- the metrics list in docs/production.md ------------------------------------------------------

def test_every_exported_metric_is_listed_in_the_production_guide(r, keys):
    from ingress import metrics as ingress_metrics
    from workers import beat_probe
    from workers import metrics as worker_metrics
    from workers.cluster_metrics import ClusterCollector

    r.lpush(keys.resync_history, json.dumps({"id": "x", "status": "completed", "finished_ms": 1, "followers": 1}))
    families = [*worker_metrics.REGISTRY.collect(), *beat_probe.REGISTRY.collect(),
                *ClusterCollector(lambda: r, keys).collect(),
                *(m for c in (ingress_metrics.REQUESTS, ingress_metrics.EVENTS, ingress_metrics.LATENCY,
                              ingress_metrics.CUT) for m in c.collect())]
    doc = PRODUCTION.read_text()
    listed = doc[doc.index("### Metrics"):doc.index("## 8.")]
    missing = {f.name for f in families if not f.name.startswith(("process_", "python_"))
               and f"`{f.name}" not in listed}
    assert missing == set()
    # The removed duplicates are named as a change, not listed as current.
    for gone in ("linesync_delivered_objects_total", "linesync_dead_lettered_total"):
        assert f"`{gone}`" in listed[listed.index("Changed in this release"):]
