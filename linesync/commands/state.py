"""`linesync state USER_ID`: what linesync holds for one LINE user. Read only; no Celery."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
import redis

from linesync.context import channel_option, connect_channels
from shared import links, outbox, state
from shared.events import STATE_NAMES
from shared.keys import Keys


def collect(r: redis.Redis, keys: Keys, user: str) -> dict:
    """The user's state, version, effective time, outbox position and links."""
    held = state.get(r, keys, user)
    listed = r.zscore(keys.outbox_ready, user)
    batch = outbox.in_flight(r, keys, [user])[0]
    flagged = state.dirty_many(r, keys, [user])[0]
    out: dict = {"user": user, "known": held is not None, "state": None, "version": None, "effective_ms": None,
                 "effective_time": None, "queued": bool(flagged or listed is not None),
                 "queued_since_ms": int(listed) if listed is not None else None,
                 "in_flight_batch": batch,
                 "external_ids": links.external_ids(r, keys, user)}
    if held is not None:
        version, st = held
        out.update(state=STATE_NAMES.get(st, st), version=version)
        try:
            ms = state.effective_ms(version)
            out.update(effective_ms=ms,
                       effective_time=datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds"))
        except ValueError:  # a version of another form
            pass
    return out


def render(d: dict) -> str:
    if not d["known"]:
        head = f"{d['user']}: no state held (no follow/unfollow seen, not listed by a resync)"
    else:
        head = f"{d['user']}: {d['state']} since {d['effective_time'] or '?'} (version {d['version']})"
    where = ("in flight in batch " + d["in_flight_batch"]) if d["in_flight_batch"] else (
        "queued for Braze" if d["queued"] else "nothing waiting for Braze")
    if d["in_flight_batch"] and d["queued"]:
        where += ", and queued again (changed since)"
    ext = ", ".join(d["external_ids"]) or "none"
    return "\n".join([head, f"  outbox: {where}", f"  linked external_ids: {ext}"])


@click.command(name="state")
@click.argument("user_id")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@channel_option
def state_command(user_id: str, as_json: bool, channel: str | None) -> None:
    """What linesync holds for one LINE user: state, version, effective time, outbox, links
    (with several channels: in each channel, or --channel's)."""
    settings, r, chans = connect_channels(channel)
    if not settings.channel_table:
        d = collect(r, chans[0].keys, user_id)
        click.echo(json.dumps(d, indent=2) if as_json else render(d))
        return
    found = {ch.name: collect(r, ch.keys, user_id) for ch in chans}
    if as_json:
        click.echo(json.dumps({"channels": found}, indent=2))
        return
    click.echo("\n".join(f"== channel {name}\n{render(d)}" for name, d in found.items()))
