"""What `linesync status` and the status page (ingress/status_page.py) report, gathered from Redis in a few round trips."""

from __future__ import annotations

import redis

from shared import dlq, identity, outbox, rates, state
from shared.clock import redis_now
from shared.keys import STREAM_GROUP, Keys
from shared.limiter import IDENTIFY, TRACK


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def queue(r: redis.Redis, keys: Keys, now: float) -> dict:
    out = {"stream_length": r.xlen(keys.webhooks), "pending": 0, "lag": None, "oldest_unconsumed_age_s": None,
           "consumers": 0, "rejected_bodies": r.xlen(keys.rejected)}
    try:
        groups = r.xinfo_groups(keys.webhooks)
    except redis.ResponseError:  # no stream yet
        return out
    for g in groups:
        if _s(g["name"]) != STREAM_GROUP:
            continue
        out["pending"] = g["pending"]
        out["consumers"] = g["consumers"]
        out["lag"] = g.get("lag")
        last = _s(g["last-delivered-id"])
        nxt = r.xrange(keys.webhooks, min="(" + last, count=1)
        if nxt:
            out["oldest_unconsumed_age_s"] = round(now - int(_s(nxt[0][0]).split("-")[0]) / 1000, 3)
            if out["lag"] is None:  # Redis < 7 has no lag field: count (bounded)
                out["lag"] = len(r.xrange(keys.webhooks, min="(" + last, count=100_000))
        elif out["lag"] is None:
            out["lag"] = 0
    return out


def limits(r: redis.Redis, keys: Keys, now: float) -> dict:
    out = {}
    for name in (TRACK, IDENTIFY):
        pause = {_s(k): _s(v) for k, v in r.hgetall(keys.pause(name)).items()}
        breaker = {_s(k): _s(v) for k, v in r.hgetall(keys.breaker(name)).items()}
        until = float(pause.get("until", 0)) / 1000
        out[name] = {
            "paused": until > now,
            "paused_for_s": round(max(0.0, until - now), 1),
            "pause_reason": pause.get("reason") if until > now else None,
            "pause_kind": pause.get("kind") if until > now else None,
            "failure_streak": int(breaker.get("streak", 0)),
            "retry_in_s": round(max(0.0, float(breaker.get("open_until", 0)) / 1000 - now), 1),
        }
    return out


def describe_limit(st: dict) -> str:
    """One limiter's state from :func:`limits`, in words (status, pauses, the status page)."""
    text = (f"PAUSED {st['paused_for_s']} s ({st['pause_kind']}: {st['pause_reason']})" if st["paused"]
            else "open")
    if st["failure_streak"]:
        text += f"; failing x{st['failure_streak']}, next probe in {st['retry_in_s']} s"
    return text


def workers(r: redis.Redis, keys: Keys, now: float) -> list[dict]:
    """Worker processes seen in the last hour: name, seconds since their heartbeat, lease held."""
    rows = r.zrange(keys.workers, 0, -1, withscores=True)
    if not rows:
        return []
    p = r.pipeline(transaction=False)
    for name, _ in rows:
        p.exists(keys.worker(_s(name)))
    alive = p.execute()
    return [{"name": _s(name), "seen_s_ago": round(max(0.0, now - seen / 1000), 1), "alive": bool(live)}
            for (name, seen), live in zip(rows, alive)]


def identity_queue(r: redis.Redis, keys: Keys) -> dict:
    """The identify/merge queue: queued, held by workers, waiting to retry, and dead letters of each kind."""
    letters = dlq.by_kind(r, keys)
    return {**identity.sizes(r, keys), "dead_letters": {k: letters.get(k, 0) for k in identity.KINDS}}


def gather(r: redis.Redis, keys: Keys, now: float | None = None) -> dict:
    now = redis_now(r) if now is None else now
    stats = {_s(k): int(v) for k, v in r.hgetall(keys.stats).items()}
    return {
        "queue": queue(r, keys, now),
        "outbox": outbox.sizes(r, keys),
        "dead_letters": dlq.summary(r, keys),
        "limits": limits(r, keys, now),
        "delivered_per_s_last_minute": rates.per_second(r, keys, rates.DELIVERED, now),
        "webhooks_per_s_last_minute": rates.per_second(r, keys, rates.WEBHOOKS, now),
        "profiles_known": state.count(r, keys),
        "workers": workers(r, keys, now),
        "counters": stats,
        "identity": identity_queue(r, keys),
    }
