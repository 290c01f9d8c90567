"""`linesync link|unlink|identify|merge`: join LINE users to known customer profiles (docs/guide.md, "Reconciling users")."""

from __future__ import annotations


import click

from shared import identity, links
from linesync.context import channel_option, connect_one
from shared.keys import Keys
from shared.clock import redis_now

# Links applied per Redis pipeline round trip in a CSV import.
CSV_CHUNK = 500


def _ctx(channel: str | None = None):
    _, r, ch = connect_one(channel)
    return r, ch.keys


def _check(external_id: str, line_user_id: str) -> None:
    problem = links.check_pair(external_id, line_user_id)
    if problem:
        raise click.BadParameter(problem)


@click.command()
@click.argument("external_id", required=False)
@click.argument("line_user_id", required=False)
@click.option("--csv", "csv_file", type=click.File("r", encoding="utf-8-sig"),
              help="Import pairs from a CSV with header external_id,native_line_id.")
@channel_option
def link(external_id: str | None, line_user_id: str | None, csv_file, channel: str | None) -> None:
    """Link EXTERNAL_ID to LINE_USER_ID: the profile gets native_line_id and the current
    subscription state, and follows every later change of that LINE user."""
    r, keys = _ctx(channel)
    if csv_file is not None:
        if external_id or line_user_id:
            raise click.UsageError("give either EXTERNAL_ID LINE_USER_ID or --csv, not both")
        _import_csv(r, keys, csv_file)
        return
    if not (external_id and line_user_id):
        raise click.UsageError("EXTERNAL_ID and LINE_USER_ID are required (or --csv FILE)")
    _check(external_id, line_user_id)
    changed = links.link(r, keys, external_id, line_user_id, now_ms=int(redis_now(r) * 1000))
    click.echo(f"linked {external_id} -> {line_user_id}" if changed else f"{external_id} was already linked to {line_user_id}")


def _import_csv(r, keys: Keys, csv_file) -> None:
    rows = list(links.read_csv(csv_file))
    bad = [row for row in rows if row.error]
    good = [row for row in rows if not row.error]
    applied = 0
    with click.progressbar(length=len(good), label="linking", show_pos=True, file=click.get_text_stream("stderr")) as bar:
        for i in range(0, len(good), CSV_CHUNK):
            chunk = good[i:i + CSV_CHUNK]
            now = int(redis_now(r) * 1000)
            p = r.pipeline(transaction=False)
            for row in chunk:
                links.link(p, keys, row.external_id, row.line_user_id, now_ms=now)
            applied += sum(1 for x in p.execute() if x)
            bar.update(len(chunk))
    for row in bad:
        click.echo(f"line {row.line}: {row.error}", err=True)
    click.echo(f"{len(good)} rows applied ({applied} new links), {len(bad)} rejected")
    if bad:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("external_id")
@channel_option
def unlink(external_id: str, channel: str | None) -> None:
    """Forget EXTERNAL_ID's LINE user: later changes no longer update that profile."""
    r, keys = _ctx(channel)
    click.echo(f"unlinked {external_id}" if links.unlink(r, keys, external_id) else f"{external_id} was not linked")


def _queue(kind: str, external_id: str, line_user_id: str, channel: str | None) -> None:
    _check(external_id, line_user_id)
    r, keys = _ctx(channel)
    identity.enqueue(r, keys, kind, external_id, line_user_id)
    click.echo(f"queued {identity.path(kind)} for {external_id} <- {line_user_id}")


@click.command()
@click.argument("external_id")
@click.argument("line_user_id")
@channel_option
def identify(external_id: str, line_user_id: str, channel: str | None) -> None:
    """Queue /users/identify: the anonymous LINE profile (alias line_id) gets EXTERNAL_ID."""
    _queue(identity.IDENTIFY, external_id, line_user_id, channel)


@click.command()
@click.argument("external_id")
@click.argument("line_user_id")
@channel_option
def merge(external_id: str, line_user_id: str, channel: str | None) -> None:
    """Queue /users/merge: the anonymous LINE profile is merged into EXTERNAL_ID's profile."""
    _queue(identity.MERGE, external_id, line_user_id, channel)
