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
