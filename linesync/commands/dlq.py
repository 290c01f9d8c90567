"""`linesync dlq list|replay|purge`: inspect and recover dead letters."""

from __future__ import annotations

import json
import time

import click

from shared import dlq as letters
from shared import state
from linesync.context import connect
from shared.webhook_queue import enqueue


def _ctx():
    _, r, keys = connect()
    return r, keys


@click.group()
def dlq() -> None:
    """Dead letters: what linesync gave up on, with the reason."""


@dlq.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--kind", type=click.Choice(["webhook", "track", "track_event", "identify", "merge"]))
@click.option("--json", "as_json", is_flag=True)
def list_(limit: int, kind: str | None, as_json: bool) -> None:
    """Show dead letters, oldest first."""
    r, keys = _ctx()
    found = letters.list_letters(r, keys, count=limit, kind=kind)
    if as_json:
        click.echo(json.dumps([l.__dict__ for l in found], indent=2))
        return
    if not found:
        click.echo("no dead letters")
    for l in found:
        subject = l.payload.get("user") or l.payload.get("stream_id") or ""
        click.echo(f"{l.id}  {l.kind:<11} {subject:<34} {l.reason}")


@dlq.command()
@click.option("--kind", type=click.Choice(["webhook", "track", "track_event"]))
@click.option("--limit", default=10_000, show_default=True)
def replay(kind: str | None, limit: int) -> None:
    """Retry dead letters. A profile is re-sent with its *current* state (never an older one);
    a webhook body is queued again (dedupe and newer-wins still apply)."""
    r, keys = _ctx()
    done, users = [], set()
    for l in letters.list_letters(r, keys, count=limit, kind=kind):
        if l.kind == "track" and l.payload.get("user"):
            users.add(l.payload["user"])
        elif l.kind == "webhook" and "body" in l.payload:
            enqueue(r, keys, l.payload["body"].encode())
        elif l.kind == "track_event" and l.payload.get("object"):
            r.rpush(keys.outbox_events, json.dumps({**l.payload["object"], "q": int(time.time() * 1000)}))
        else:
            continue
        done.append(l.id)
    state.mark_dirty(r, keys, users, now_ms=int(time.time() * 1000))
    letters.remove(r, keys, done)
    click.echo(f"replayed {len(done)} dead letters ({len(users)} profiles re-queued)")


@dlq.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def purge(yes: bool) -> None:
    """Delete every dead letter."""
    r, keys = _ctx()
    if not yes:
        click.confirm(f"Delete {r.xlen(keys.dlq)} dead letters?", abort=True)
    click.echo(f"purged {letters.purge(r, keys)} dead letters")
