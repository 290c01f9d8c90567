"""`linesync status`: queue, outbox, dead letters, limits, throughput, resync."""

from __future__ import annotations

import json

import click

from linesync.context import connect
from shared.status import describe_limit, gather


def collect() -> dict:
    _, r, keys = connect()
    out = gather(r, keys)  # with the identity queue (shared/status.py identity_queue)
    from workers.resync import resync_status
    out["resync"] = resync_status(r, keys)
    return out


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
def status(as_json: bool) -> None:
    """Queue depth and lag, outbox, in-flight batches, dead letters, rate-limit state, last resync."""
    s = collect()
    click.echo(json.dumps(s, indent=2, default=str) if as_json else _render(s))
