"""deploy/: the Grafana dashboard and the Prometheus rules read only metrics the code exports.

Every metric name in the dashboard's expressions and the rules is looked up in
what the processes export: the worker's registry (workers/metrics.py), the
cluster-wide collector run against a real Redis (workers/cluster_metrics.py)
and the ingress's metrics (ingress/metrics.py). A renamed metric fails here,
not silently on a dashboard. With ``promtool`` on PATH the rules are also
checked and their unit tests (deploy/prometheus/alerts_test.yml) run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "linesync.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"

# PromQL words that are not metric names.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "inf", "nan", "atan2", "topk", "bottomk", "count_values", "quantile"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (Grafana variables, functions, labels, ranges removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals
    e = re.sub(r"\$\{[^}]*\}|\$\w+", "1", e)                                      # $__rate_interval, ${x}
    e = re.sub(r"\{[^}]*\}", "", e)                                               # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                                              # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def test_metric_names_are_read_out_of_promql():
    assert metric_names('histogram_quantile(0.99, sum by (le, endpoint) '
                        '(rate(linesync_braze_request_duration_seconds_bucket{status!="error"}[$__rate_interval])))'
                        ) == {"linesync_braze_request_duration_seconds_bucket"}
    assert metric_names('(absent(a_total) or max(b{kind=~"auth|x"}) < 1) unless on() (max(c) == 0)'
                        ) == {"a_total", "b", "c"}
    assert metric_names("time() - max(d) > 26 * 3600 and e offset 5m") == {"d", "e"}
    assert metric_names("sum(rate(f[5m:1m])) / 1e3") == {"f"}


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    out = []

    def walk(panels):
        for p in panels:
            out.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(doc["panels"])
    return out


def rule_exprs() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def _sample_names(families) -> set[str]:
    """Names a Prometheus server stores for these families (a labelled family may have no sample yet)."""
    out = set()
    for fam in families:
        out.add(fam.name)
        suffixes = {"counter": ("_total", "_created"), "histogram": (*HISTOGRAM_SUFFIXES, "_created"),
                    "summary": ("_sum", "_count", "_created"), "info": ("_info",)}.get(fam.type, ())
        out.update(fam.name + s for s in suffixes)
        out.update(s.name for s in fam.samples)
    return out


@pytest.fixture
def exported(r, keys) -> set[str]:
    from ingress import metrics as ingress_metrics
    from workers import metrics as worker_metrics
    from workers.cluster_metrics import ClusterCollector

    # A Redis in which every cluster family has something to say (a completed resync, a live worker).
    r.lpush(keys.resync_history, json.dumps({"id": "x", "status": "completed", "finished_ms": 1, "followers": 1}))
    r.zadd(keys.workers, {"w": 1})
    names = _sample_names(worker_metrics.REGISTRY.collect())
    names |= _sample_names(ClusterCollector(lambda: r, keys).collect())
    names |= _sample_names(m for c in (ingress_metrics.REQUESTS, ingress_metrics.EVENTS, ingress_metrics.LATENCY)
                           for m in c.collect())
    return names


def _unknown(exprs: list[str], exported: set[str]) -> dict[str, set[str]]:
    bad = {}
    for expr in exprs:
        missing = set()
        for name in metric_names(expr):
            base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
            if name not in exported and base + "_bucket" not in exported:
                missing.add(name)
        if missing:
            bad[expr] = missing
    return bad


def test_the_dashboard_reads_only_exported_metrics(exported):
    exprs = dashboard_exprs()
    assert len(exprs) >= 25
    assert _unknown(exprs, exported) == {}
    read = set().union(*map(metric_names, exprs))
    # The topics the dashboard is for.
    assert {"linesync_worker_delivered_objects_total", "linesync_ingress_requests_total",
            "linesync_webhook_unconsumed", "linesync_webhook_oldest_unconsumed_age_seconds",
            "linesync_braze_request_duration_seconds_bucket", "linesync_braze_requests_in_flight",
            "linesync_braze_pauses_total", "linesync_braze_paused", "linesync_braze_failure_streak",
            "linesync_dead_letters", "linesync_resync_followers", "linesync_workers_alive"} <= read


def test_the_dashboard_is_well_formed():
    doc = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    assert {v["name"] for v in doc["templating"]["list"]} >= {"datasource"}
    for p in doc["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs)), p["title"]


def test_the_rules_read_only_exported_metrics(exported):
    exprs = rule_exprs()
    assert _unknown(exprs, exported) == {}
    read = set().union(*map(metric_names, exprs))
    assert {"linesync_webhook_oldest_unconsumed_age_seconds", "linesync_worker_dead_lettered_total",
            "linesync_braze_paused", "linesync_workers_alive", "linesync_resync_last_completed_timestamp_seconds",
            "linesync_redis_up"} <= read


def _promtool(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus); "
                    "the metric names were still checked above")
    return subprocess.run([exe, *args], cwd=RULES.parent, capture_output=True, text=True, timeout=120)


def test_promtool_checks_the_rules():
    res = _promtool("check", "rules", RULES.name)
    assert res.returncode == 0, res.stdout + res.stderr


def test_promtool_runs_the_rules_unit_tests():
    res = _promtool("test", "rules", RULE_TESTS.name)
    assert res.returncode == 0, res.stdout + res.stderr
