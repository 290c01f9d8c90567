"""`linesync dlq list|replay|purge`: inspect and recover dead letters."""

from __future__ import annotations

import json

import click

from shared import dlq as letters
from linesync.context import channel_option, connect_channels
from shared.clock import redis_now

KINDS = list(letters.KINDS)


def _scopes(channel: str | None):
    """(r, [(channel name or "" for a single-channel deployment, its keys)])."""
    settings, r, chans = connect_channels(channel)
    several = bool(settings.channel_table)
    return r, [(c.name if several else "", c.keys) for c in chans]


def _heading(name: str) -> None:
    if name:
        click.echo(f"== channel {name}")


@click.group()
def dlq() -> None:
    """Dead letters: what linesync gave up on, with the reason."""


@dlq.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--kind", type=click.Choice(KINDS))
@click.option("--json", "as_json", is_flag=True)
@channel_option
def list_(limit: int, kind: str | None, as_json: bool, channel: str | None) -> None:
    """Show dead letters, oldest first (per channel, with several)."""
    r, scopes = _scopes(channel)
    rows = []
    for name, keys in scopes:
        found = letters.list_letters(r, keys, count=limit, kind=kind)
        if as_json:
            rows += [{**l.__dict__, "channel": name} if name else l.__dict__ for l in found]
            continue
        _heading(name)
        if not found:
            click.echo("no dead letters")
        for l in found:
            click.echo(f"{l.id}  {l.kind:<11} {letters.subject(l):<34} {l.reason}")
    if as_json:
        click.echo(json.dumps(rows, indent=2))


@dlq.command()
@click.option("--kind", type=click.Choice(KINDS))
@click.option("--limit", default=10_000, show_default=True)
@channel_option
def replay(kind: str | None, limit: int, channel: str | None) -> None:
    """Retry dead letters. A profile is re-sent with its *current* state (never an older one);
    a webhook body, a custom event, an identify or merge request is queued again (dedupe and
    newer-wins still apply). Says what it did per kind; letters it cannot replay are kept.
    Two replays at once re-queue each letter once. Each channel's letters go back to that channel."""
    r, scopes = _scopes(channel)
    for name, keys in scopes:
        _heading(name)
        _replay(r, keys, kind, limit)


def _replay(r, keys, kind: str | None, limit: int) -> None:
    found = letters.list_letters(r, keys, count=limit, kind=kind)
    if not found:
        click.echo("no dead letters to replay")
        return
    done = letters.replay(r, keys, found, now_ms=int(redis_now(r) * 1000))
    click.echo(f"replayed {sum(done.replayed.values())} of {len(found)} dead letters")
    if done.gone:
        click.echo(f"  {done.gone} were gone by then (replayed or purged meanwhile by another run)")
    for k, n in sorted(done.replayed.items()):
        click.echo(f"  {k:<11} {n:>6}  {_DONE.get(k, 'queued again').format(profiles=done.profiles)}")
    if done.kept:
        click.echo(f"kept {sum(done.kept.values())} dead letters that cannot be replayed (see `linesync dlq list`):")
        for (k, why), n in sorted(done.kept.items()):
            click.echo(f"  {k:<11} {n:>6}  {why}")


# What replaying a letter of each kind did, for the summary.
_DONE = {
    "webhook": "bodies queued again on the webhook stream",
    "track": "letters: {profiles} profiles queued to send their current state",
    "track_event": "custom events queued again",
    "identify": "/users/identify requests queued again",
    "merge": "/users/merge requests queued again",
}


@dlq.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@channel_option
def purge(yes: bool, channel: str | None) -> None:
    """Delete every dead letter (of every channel, or of --channel's)."""
    r, scopes = _scopes(channel)
    if not yes:
        click.confirm(f"Delete {sum(r.xlen(keys.dlq) for _, keys in scopes)} dead letters?", abort=True)
    for name, keys in scopes:
        _heading(name)
        click.echo(f"purged {letters.purge(r, keys)} dead letters")
