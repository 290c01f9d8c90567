"""`linesync doctor`: is the whole chain (Redis, LINE, Braze, workers, beat, resync) set up right?"""

from __future__ import annotations

import json
import sys

from typing import TYPE_CHECKING

import click

from shared.config import load_settings

if TYPE_CHECKING:
    from shared.check import Check


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print every check as JSON (name, ok, level, detail, fix).")
@click.option("--send-test", is_flag=True,
              help="Also ask LINE to deliver a signed test webhook to LINESYNC_PUBLIC_URL/line/events "
                   "(unset: to the URL LINE has on file) with POST /v2/bot/channel/webhook/test: proves "
                   "LINE reaches the ingress and the channel secret matches. Nothing is queued (the body "
                   "has no events).")
@click.option("-v", "--verbose", is_flag=True, help="List the checks that passed too.")
@click.option("--resync-max-age", type=click.FloatRange(min=0, min_open=True), default=None, metavar="HOURS",
              help="Fail when the last completed resync is older than this. [default: 26 for a cron "
                   "RESYNC_SCHEDULE, the period + 2 for 'every <d>']")
@click.option("--channel", metavar="NAME", help="With LINESYNC_CHANNELS_FILE: check only this channel "
              "(default: every channel).")
def doctor(as_json: bool, send_test: bool, verbose: bool, resync_max_age: float | None, channel: str | None) -> None:
    """Check Redis, LINE, Braze, workers, beat and the last resync; exit 0 only when all pass.

    Each failed check is one line with how to fix it. Exit status: 0 all passed,
    1 a check failed, 3 only warnings (AOF off, no maxmemory, LINESYNC_PUBLIC_URL
    unset, no resync yet), 2 a setting is malformed.
    """
    from linesync.doctor import diagnose, exit_code
    from linesync.doctor.http import RequestsHttp

    settings = load_settings()
    if channel and not settings.channel_table and channel != "default":
        raise click.UsageError(f"no channel {channel!r} (channels: default)")
    checks = diagnose(settings, http=RequestsHttp(), send_test=send_test,
                      resync_max_age_s=resync_max_age * 3600 if resync_max_age else None, channel=channel)
    code = exit_code(checks)
    if as_json:
        click.echo(json.dumps({"ok": code == 0, "exit_code": code, "checks": [c.to_json() for c in checks]},
                              indent=2))
    else:
        click.echo(render(checks, verbose=verbose))
    # SystemExit, not ctx.exit(): under linesync.cli.main (standalone_mode=False) ctx.exit's code is lost.
    sys.exit(code)


def render(checks: list[Check], *, verbose: bool = False) -> str:
    """One line per failed check (every check with ``verbose``), then a summary line."""
    shown = [c for c in checks if verbose or c.ok is False]
    problems = [c for c in checks if c.ok is False]
    warnings = [c for c in problems if c.level == "warning"]
    counted = [c for c in checks if c.ok is not None]
    if not problems:
        summary = f"doctor: all {len(counted)} checks passed"
    else:
        kind = ("" if not warnings else " (warnings only)" if len(warnings) == len(problems)
                else f" ({len(warnings)} of them warnings)")
        summary = f"doctor: {len(problems)} of {len(counted)} checks failed{kind}"
    return "\n".join([c.line() for c in shown] + [summary])
