"""Workers, beat and resync checks: pure judgements, and the reading against a real Redis."""

import json

import pytest

from linesync.doctor import process_checks as pc
from shared.check import FAIL, OK, WARN
from workers import resync

H = 3600 * 1000
NOW = 1_700_000_000_000


def test_workers():
    assert pc.workers_alive([]).status == FAIL
    gone = pc.workers_alive([{"name": "w1", "alive": False, "seen_s_ago": 100}])
    assert gone.status == FAIL and "all gone" in gone.detail and "linesync worker" in gone.fix
    ok = pc.workers_alive([{"name": "w1", "alive": True}, {"name": "w2", "alive": False}])
    assert ok.status == OK and "1 worker process alive (w1)" in ok.detail and "1 gone" in ok.detail


def test_beat():
    assert pc.beat_alive("{linesync}:redbeat:lock", 12_000).status == OK
    c = pc.beat_alive("{linesync}:redbeat:lock", -2)
    assert c.status == FAIL and "{linesync}:redbeat:lock" in c.detail and "linesync beat" in c.fix


def run(status="completed", finished_ms=NOW, error=""):
    return {"status": status, "finished_ms": finished_ms, "started_ms": finished_ms - 1000, "followers": 7,
            "error": error}


@pytest.mark.parametrize("age_h, status", [(1, OK), (25.9, OK), (26.1, FAIL), (100, FAIL)])
def test_resync_age(age_h, status):
    last = run(finished_ms=NOW - int(age_h * H))
    c = pc.resync_recent(last, last, None, now_ms=NOW, max_age_s=26 * 3600)
    assert c.status == status
    if status == FAIL:
        assert "more than 26 h" in c.detail and "linesync resync" in c.fix


def test_an_old_completed_run_and_a_newer_failed_one():
    old, bad = run(finished_ms=NOW - 30 * H), run("failed", NOW - H, "LINE refused (HTTP 403)")
    c = pc.resync_recent(old, bad, None, now_ms=NOW, max_age_s=26 * 3600)
    assert c.status == FAIL and "the last run failed: LINE refused (HTTP 403)" in c.detail


def test_never_completed():
    assert pc.resync_recent(None, None, None, now_ms=NOW, max_age_s=26 * 3600).status == WARN
    bad = run("failed", NOW - H, "token refused")
    c = pc.resync_recent(None, bad, None, now_ms=NOW, max_age_s=26 * 3600)
    assert c.status == FAIL and "token refused" in c.detail
    first = {"status": "running", "started_ms": NOW - 60_000}
    assert pc.resync_recent(None, None, first, now_ms=NOW, max_age_s=26 * 3600).status == OK
    stuck = {"status": "running", "started_ms": NOW - 27 * H}
    assert pc.resync_recent(None, None, stuck, now_ms=NOW, max_age_s=26 * 3600).status == FAIL


def test_max_age_follows_the_schedule():
    assert pc.resync_max_age("0 3 * * *") == 26 * 3600
    assert pc.resync_max_age("every 6h") == 8 * 3600
    assert pc.resync_max_age("every 48h") == 50 * 3600


def test_read_resync_finds_the_last_completed_run(r, keys):
    assert pc.read_resync(r, keys) == (None, None, None)
    for entry in (run(finished_ms=NOW - 3 * H), run("failed", NOW - 2 * H, "boom")):
        r.lpush(keys.resync_history, json.dumps(entry))
    r.lpush(keys.resync_history, b"not json")
    completed, last, current = pc.read_resync(r, keys)
    assert completed["finished_ms"] == NOW - 3 * H
    assert last is None  # resync_status reads only the newest entry, which is unreadable here
    r.lpop(keys.resync_history)
    completed, last, current = pc.read_resync(r, keys)
    assert last["status"] == "failed" and completed["status"] == "completed" and current is None
    resync.start(r, keys, reason="test", now_ms=NOW, mark_missing=False)
    assert pc.read_resync(r, keys)[2]["status"] == "running"
