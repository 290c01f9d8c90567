"""`linesync resync [--wait]`: ask the workers for a follower resync, optionally follow it to the end.

The request is the Celery task ``linesync.resync.start`` (the same one beat
sends), with a run id chosen here so that ``--wait`` knows which run to
follow. The workers need LINE_CHANNEL_ACCESS_TOKEN; this command only needs
REDIS_URL (Redis is also the broker).
"""

from __future__ import annotations

import sys
import time

import click

from shared import queues
from shared import resync_runs as runs
from linesync.context import channel_option, connect_channels
from shared.keys import Keys
from shared.clock import redis_now

# How often --wait reads the run's progress (s).
POLL_SECONDS = 0.5
# Without a terminal, --wait prints a progress line this often (s).
PLAIN_EVERY = 2.0


def _clock(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _last_total(r, keys: Keys) -> int | None:
    """Followers counted by the last completed run: the best guess of this run's total."""
    last = runs.last_completed(r, keys)
    return int(last["followers"]) if last and last.get("followers") else None


def progress_line(run, now_ms: int, expected: int | None) -> str:
    """One line of progress for ``run`` (a shared.resync_runs.Run)."""
    elapsed = max(0.001, (now_ms - run.started_ms) / 1000)
    rate = run.followers / elapsed
    parts = [f"resync {run.id}", f"pages {run.pages:,}", f"followers {run.followers:,}",
             f"{rate:,.0f}/s", f"elapsed {_clock(elapsed)}"]
    if run.phase == "missing" and not run.missing_counted:
        parts.append(f"counting known users absent from the list: {run.missing_found:,} so far")
    elif run.phase == "missing":
        parts.append(f"marking absent users unsubscribed: {run.unsubscribed:,} of {run.missing_found:,}")
    elif run.phase == "pages" and expected and rate > 0 and run.followers < expected:
        parts.append(f"ETA ~{_clock((expected - run.followers) / rate)} (last run: {expected:,})")
    if run.restarts:
        parts.append(f"restarts {run.restarts}")
    if run.retry_at_ms and run.error:
        parts.append(f"retry {run.attempts} in {max(0, run.retry_at_ms - now_ms) / 1000:.0f}s: {run.error[:120]}")
    return " | ".join(parts)


def _follow(r, keys: Keys, run_id: str, *, start_timeout: float, poll: float) -> int:
    tty = sys.stdout.isatty()
    expected = _last_total(r, keys)
    t0 = time.monotonic()
    last_plain, last_len = 0.0, 0
    warned = False
    while True:
        run = runs.load(r, keys)
        if run is None or run.id != run_id:
            if run is not None and run.status == runs.RUNNING:
                click.echo(f"Another run ({run.id}, {run.reason}) is running; following it.")
                run_id = run.id
                continue
            if time.monotonic() - t0 > start_timeout:
                click.echo(f"No worker started the resync within {start_timeout:.0f} s; the request stays queued. "
                           "Is `linesync worker` running (queue linesync.control)?", err=True)
                return 3
            if not warned and time.monotonic() - t0 > 5:
                click.echo("Waiting for a worker to pick up the request…")
                warned = True
            time.sleep(poll)
            continue
        now = int(time.time() * 1000)
        if run.status != runs.RUNNING:
            if tty and last_len:
                click.echo("\r" + " " * last_len + "\r", nl=False)
            click.echo(progress_line(run, run.finished_ms or now, None))
            if run.status == runs.COMPLETED:
                extra = f", {run.unsubscribed:,} absent users unsubscribed" if run.mark_missing else ""
                click.echo(f"Resync completed: {run.followers:,} followers in {run.pages:,} pages, "
                           f"{run.subscribed:,} newly subscribed{extra}, "
                           f"{(run.finished_ms - run.started_ms) / 1000:.1f} s.")
                return 0
            click.echo(f"Resync failed: {run.error or 'no reason recorded'}", err=True)
            return 1
        line = progress_line(run, now, expected)
        if tty:
            pad = max(0, last_len - len(line))
            click.echo("\r" + line + " " * pad, nl=False)
            last_len = len(line)
        elif time.monotonic() - last_plain >= PLAIN_EVERY:
            click.echo(line)
            last_plain = time.monotonic()
        time.sleep(poll)


@click.command()
@click.option("--wait", is_flag=True, help="Show progress until the run ends; exit 0 if it completed, 1 if it failed.")
@click.option("--mark-missing/--no-mark-missing", default=None,
              help="Mark known users absent from the complete pass unsubscribed "
                   "(default: RESYNC_MARK_MISSING_UNSUBSCRIBED). See docs/guide.md, Follower resync, for LINE's caveat.")
@click.option("--force-mark-missing", is_flag=True,
              help="Mark absent users unsubscribed even if the pass lists fewer than "
                   "LINESYNC_RESYNC_MARK_MISSING_MIN_SHARE of the known followers (implies --mark-missing; "
                   "recorded on the run). A pass listing 0 followers still marks nobody.")
@click.option("--start-timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="With --wait: give up (exit 3) if no worker starts the run within this many seconds.")
@click.option("--cancel", is_flag=True, help="End the running resync (it stops at its next page) instead.")
@channel_option
def resync(wait: bool, mark_missing: bool | None, force_mark_missing: bool, start_timeout: float,
           cancel: bool, channel: str | None) -> None:
    """Start a follower resync (pages LINE's follower list; every follower becomes subscribed).
    With several channels: each channel's own (or --channel's), one after the other with --wait."""

    if force_mark_missing:
        if mark_missing is False:
            raise click.UsageError("--force-mark-missing contradicts --no-mark-missing")
        mark_missing = True

    settings, r, chans = connect_channels(channel)
    several = bool(settings.channel_table)
    worst = 0
    for ch in chans:
        if several:
            click.echo(f"== channel {ch.name}")
        code = _resync_one(r, ch.keys, ch.name if several else None, wait=wait, mark_missing=mark_missing,
                           force_mark_missing=force_mark_missing, start_timeout=start_timeout, cancel=cancel)
        worst = max(worst, code)
    if worst:
        raise click.exceptions.Exit(worst)


def _resync_one(r, keys: Keys, channel: str | None, *, wait: bool, mark_missing: bool | None,
                force_mark_missing: bool, start_timeout: float, cancel: bool) -> int:
    """One channel's resync (``channel`` None: the only channel's, the task carrying no channel)."""
    if cancel:
        if runs.cancel(r, keys, now_ms=int(redis_now(r) * 1000)):
            click.echo("resync cancelled; its worker stops at the next page")
            return 0
        click.echo("no resync is running")
        return 1
    cur = runs.load(r, keys)
    if cur is not None and cur.status == runs.RUNNING:
        click.echo(f"A resync is already running: run {cur.id} ({cur.reason}), "
                   f"{cur.pages:,} pages / {cur.followers:,} followers so far.")
        if not wait:
            return 0
        run_id = cur.id
    else:
        from workers import app
        run_id = runs.new_run_id(int(redis_now(r) * 1000))
        kwargs = {"reason": "manual", "mark_missing": mark_missing, "run_id": run_id,
                  "force_mark_missing": force_mark_missing}
        app.send_task("linesync.resync.start", queue=queues.TASKS,
                      kwargs={**kwargs, "channel": channel} if channel else kwargs)
        click.echo(f"Resync requested: run {run_id}"
                   + (" (mark-missing forced: the share check is off for this run)." if force_mark_missing else "."))
        if not wait:
            return 0
    return _follow(r, keys, run_id, start_timeout=start_timeout, poll=POLL_SECONDS)
