"""Workers and beat alive, resync recent: judged from the worker registry, redbeat's lock and the
resync history. The judging functions are pure; :func:`read_resync` does the reading."""

from __future__ import annotations

from typing import Any

import redis

from shared.check import Check, failed, passed, warning
from shared.config import parse_interval
from shared.keys import Keys
from shared.resync_runs import COMPLETED, last_completed, resync_status

# A daily resync (the default RESYNC_SCHEDULE) plus two hours of slack.
DEFAULT_RESYNC_MAX_AGE_S = 26 * 3600
# Slack added to an `every <d>` schedule's period.
RESYNC_SLACK_S = 2 * 3600


def workers_alive(rows: list[dict[str, Any]]) -> Check:
    """``rows``: :func:`shared.status.workers` (name, seen_s_ago, alive = its lease key exists)."""
    live = [w for w in rows if w.get("alive")]
    gone = [w for w in rows if not w.get("alive")]
    if not live:
        seen = f" ({len(gone)} seen in the last hour, all gone)" if gone else ""
        return failed("workers.alive", f"no live worker process{seen}: nothing consumes webhooks or sends to Braze",
                      "start `linesync worker` (or `celery -A workers worker`) and check its log")
    names = ", ".join(w["name"] for w in live[:5]) + (" …" if len(live) > 5 else "")
    extra = f"; {len(gone)} gone recently" if gone else ""
    return passed("workers.alive", f"{len(live)} worker process{'es' if len(live) != 1 else ''} alive "
                                   f"({names}){extra}")


def beat_alive(lock_key: str, lock_ttl_ms: int) -> Check:
    """``lock_ttl_ms``: PTTL of redbeat's lock key (-2: absent, -1: no expiry)."""
    if lock_ttl_ms == -2:
        return failed("beat.alive", f"no beat holds the schedule lock ({lock_key}): scheduled resyncs do not run",
                      "start `linesync beat` (more than one replica is safe)")
    return passed("beat.alive", "a beat holds the schedule lock")


def resync_max_age(schedule: str) -> float:
    """How old the last completed resync may be: ``every <d>`` → d + 2 h; cron → 26 h (a daily run)."""
    if schedule.startswith("every "):
        return parse_interval(schedule) + RESYNC_SLACK_S
    return DEFAULT_RESYNC_MAX_AGE_S


def _ago(ms: int, now_ms: int) -> str:
    s = max(0, now_ms - ms) / 1000
    if s < 120:
        return f"{s:.0f} s ago"
    if s < 2 * 3600:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.1f} h ago"


def resync_recent(last_completed: dict[str, Any] | None, last_finished: dict[str, Any] | None,
                  current: dict[str, Any] | None, *, now_ms: int, max_age_s: float) -> Check:
    """Fail when the last completed resync is older than ``max_age_s``; none ever: a warning."""
    name = "resync.recent"
    limit_h = f"{max_age_s / 3600:g} h"
    running = f"; one is running since {_ago(int(current.get('started_ms') or now_ms), now_ms)}" if current else ""
    failure = ""
    if last_finished and last_finished.get("status") != COMPLETED:
        failure = f"; the last run failed: {last_finished.get('error') or 'no reason recorded'}"
    fix = ("see `linesync status`; check that beat runs and LINE_CHANNEL_ACCESS_TOKEN works; "
           "start one with `linesync resync --wait`")
    if last_completed is None:
        if failure:
            return failed(name, f"no resync has completed{failure}{running}", fix)
        if current:
            started = int(current.get("started_ms") or now_ms)
            if now_ms - started <= max_age_s * 1000:
                return passed(name, f"the first resync is running (started {_ago(started, now_ms)})")
            return failed(name, f"the first resync has been running since {_ago(started, now_ms)}", fix)
        return warning(name, "no resync has run yet (the first runs when the first worker starts, with "
                             "RESYNC_ON_START; later ones at RESYNC_SCHEDULE)",
                       "start one with `linesync resync --wait`, or wait for the schedule")
    finished = int(last_completed.get("finished_ms") or 0)
    detail = f"last completed resync {_ago(finished, now_ms)} ({last_completed.get('followers', '?')} followers)"
    if now_ms - finished > max_age_s * 1000:
        return failed(name, f"{detail}: more than {limit_h}{failure}{running}", fix)
    return passed(name, detail)


def read_resync(r: redis.Redis, keys: Keys) -> tuple[dict | None, dict | None, dict | None]:
    """(last completed run, last finished run, running run): summaries as `linesync status` shows them."""
    st = resync_status(r, keys)
    return last_completed(r, keys), st["last"], st["current"]
