"""`linesync status`: queue, outbox, dead letters, limits, throughput, resync."""

from __future__ import annotations

import json

import click

from linesync.context import channel_option, connect_channels
from shared.clock import redis_now
from shared.keys import Keys
from shared.status import describe_limit, gather, limits, workers


def collect(channel: str | None = None) -> dict:
    """The status of the only channel; with a channels file, ``{"channels": {name: status}}``."""
    settings, r, chans = connect_channels(channel)
    if not settings.channel_table:
        return _one(r, chans[0].keys)
    now = redis_now(r)
    out = {}
    for ch in chans:
        st = _one(r, ch.keys)
        st["limits"] = limits(r, ch.workspace_keys, now)  # the channel's Braze workspace's
        st["workers"] = workers(r, Keys(settings.key_prefix), now)  # worker processes serve every channel
        st["workspace"] = ch.workspace_label
        out[ch.name] = st
    from shared import leftovers
    return {"channels": out, "removed_channels": leftovers.find(r, settings.key_prefix, [c.name for c in
                                                                                         settings.channels()])}


def _one(r, keys: Keys) -> dict:
    out = gather(r, keys)  # with the identity queue (shared/status.py identity_queue)
    from workers.resync import resync_status
    out["resync"] = resync_status(r, keys)
    return out


def render(s: dict) -> str:
    if "channels" not in s:
        return _render(s)
    from shared import leftovers
    parts = [f"== channel {name} (Braze workspace {st['workspace']})\n" + _render(st)
             for name, st in s["channels"].items()]
    return "\n\n".join(parts + leftovers.describe(s.get("removed_channels") or {}))


def _render(s: dict) -> str:
    q, o, lim = s["queue"], s["outbox"], s["limits"]
    lines = [
        "Webhook queue",
        f"  stream length {q['stream_length']}, unconsumed {q['lag']}, in processing {q['pending']}, "
        f"oldest unconsumed {q['oldest_unconsumed_age_s'] if q['oldest_unconsumed_age_s'] is not None else '-'} s, "
        f"rejected bodies {q['rejected_bodies']}",
        "Outbox",
        f"  profiles waiting {o['pending_profiles']}, in flight {o['inflight_profiles']} "
        f"in {o['open_batches']} batches ({o['retrying_batches']} waiting to retry), "
        f"custom events waiting {o['pending_events']}",
        f"  delivered {s['delivered_per_s_last_minute']} objects/s over the last minute; "
        f"{s['counters'].get('delivered_objects', 0)} in all; profiles known {s['profiles_known']}",
    ]
    idn = s.get("identity")
    if idn:
        lines += [
            "Identity queue (/users/identify, /users/merge)",
            f"  queued {idn['queued']}, held by workers {idn['held']}, waiting to retry {idn['retrying']}; "
            f"dead letters: identify {idn['dead_letters']['identify']}, merge {idn['dead_letters']['merge']}",
        ]
    lines.append(f"Dead letters: {s['dead_letters']['total']}")
    for reason, n in s["dead_letters"].items():
        if reason != "total":
            lines.append(f"  {n:>7}  {reason}")
    lines.append("Braze limits")
    for name, st in lim.items():
        lines.append(f"  {name}: {describe_limit(st)}")
    live = [w for w in s["workers"] if w["alive"]]
    lines.append(f"Workers: {len(live)} alive")
    for w in s["workers"]:
        lines.append(f"  {w['name']}: " + (f"alive, seen {w['seen_s_ago']} s ago" if w["alive"]
                                          else f"gone (last seen {w['seen_s_ago']} s ago)"))
    rs = s.get("resync") or {}
    lines.append("Resync")
    for label in ("current", "last"):
        run = rs.get(label)
        if run:
            lines.append(f"  {label}: {run.get('status')} ({run.get('reason')}) pages {run.get('pages')}, "
                         f"followers {run.get('followers')}" + (f", error: {run['error']}" if run.get("error") else ""))
    if not rs.get("current") and not rs.get("last"):
        lines.append("  none yet")
    c = s["counters"]
    lines.append("Events")
    lines.append("  " + ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(c.items()) if k.startswith("events:"))
                 or "  none yet")
    lines.append(f"  transitions {c.get('transitions', 0)}, duplicates {c.get('duplicates', 0)}, "
                 f"stale {c.get('stale', 0)}, unchanged {c.get('unchanged', 0)}")
    return "\n".join(lines)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@channel_option
def status(as_json: bool, channel: str | None) -> None:
    """Queue depth and lag, outbox, in-flight batches, dead letters, rate-limit state, last resync
    (per channel, with several)."""
    s = collect(channel)
    click.echo(json.dumps(s, indent=2, default=str) if as_json else render(s))
