"""`linesync pauses [--clear]`: see and lift the pauses every worker obeys.

A pause comes from Braze (a 429 or ``X-RateLimit-Remaining: 0`` until its
reset, capped at ``BRAZE_PAUSE_MAX_SECONDS``) or from an auth failure
(401/403/404, ``BRAZE_AUTH_RETRY_SECONDS`` then a probe). ``--clear`` lifts
them and closes the failure breaker, e.g. after fixing ``BRAZE_API_KEY``:
delivery resumes at once (a wrong fix just pauses again).
"""

from __future__ import annotations

import json

import click

from linesync.context import channel_option, connect_channels
from shared.limiter import IDENTIFY, TRACK, Limiter
from shared.clock import redis_now
from shared.status import describe_limit, limits


@click.command()
@click.option("--clear", is_flag=True, help="Lift every pause and close the failure breakers.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@channel_option
def pauses(clear: bool, as_json: bool, channel: str | None) -> None:
    """Show (or --clear) Braze pauses and failure breakers shared by every worker
    (with several channels: per Braze workspace, or --channel's workspace)."""
    settings, r, chans = connect_channels(channel)
    if not settings.channel_table:
        _pauses(settings, r, chans[0].workspace_keys, clear, as_json)
        return
    workspaces: dict = {}
    for ch in chans:
        workspaces.setdefault(ch.workspace, []).append(ch)
    out = {}
    for members in workspaces.values():
        ch = members[0]
        label = f"Braze workspace {ch.workspace_label} (channels {', '.join(c.name for c in members)})"
        if as_json:
            out[ch.workspace_label] = {"channels": [c.name for c in members],
                                       **_pauses(ch.settings, r, ch.workspace_keys, clear, as_json, echo=False)}
            continue
        click.echo(f"== {label}")
        _pauses(ch.settings, r, ch.workspace_keys, clear, as_json)
    if as_json:
        click.echo(json.dumps(out, indent=2))


def _pauses(settings, r, keys, clear: bool, as_json: bool, *, echo: bool = True) -> dict:
    if clear:
        rates = {TRACK: settings.braze_track_rate_limit, IDENTIFY: settings.braze_identify_rate_limit}
        for name, rate in rates.items():
            lim = Limiter(r, keys, name, rate)
            lifted = lim.clear_pause()
            r.delete(keys.breaker(name), keys.breaker_probe(name))
            if not as_json:
                click.echo(f"{name}: {'pause lifted' if lifted else 'was not paused'}; breaker closed")
    state = limits(r, keys, redis_now(r))
    if not echo:
        return state
    if as_json:
        click.echo(json.dumps(state, indent=2))
        return state
    if clear:
        return state
    for name, st in state.items():
        click.echo(f"{name}: {describe_limit(st)}")
    return state
