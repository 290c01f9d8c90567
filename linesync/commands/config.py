"""`linesync config`: the effective settings (environment over ./.env over defaults), secrets redacted."""

from __future__ import annotations

import json

import click

from shared import payload
from shared.config import load_settings


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object: variable -> value.")
def config(as_json: bool) -> None:
    """Print the effective settings: secrets only as <set>/<unset>, REDIS_URL's password masked.

    BRAZE_STATE_MODE's line says where the follow state goes in Braze.
    Every value is checked as the processes check it: a malformed one stops
    here with one line naming the variable (exit status 2).
    """
    settings = load_settings()
    values = settings.redacted()
    chans = _channels(settings)
    if as_json:
        click.echo(json.dumps({**values, "channels": chans} if chans else values, indent=2))
        return
    defaults = settings.defaults()
    mode, group = settings.braze_state_mode, settings.braze_subscription_group_id
    notes = {"BRAZE_STATE_MODE": f"  -> {payload.destination(mode, group)}"}
    if mode == payload.ATTRIBUTES:
        notes["BRAZE_SUBSCRIPTION_GROUP_ID"] = "  (not used: BRAZE_STATE_MODE=attributes)"
    width = max(len(k) for k in values)
    for name, value in values.items():
        mark = "  (default)" if name in defaults and value != "<unset>" else ""
        click.echo(f"{name:<{width}}  {value}{mark}{notes.get(name, '')}")
    for name, ch in chans.items():
        click.echo(f"channel {name}: " + ", ".join(f"{k}={v}" for k, v in ch.items()))


def _channels(settings) -> dict[str, dict[str, str]]:
    """With LINESYNC_CHANNELS_FILE: each channel's own settings, secrets as <set>/<unset>."""
    if not settings.channel_table:
        return {}
    out = {}
    for ch in settings.channel_table:
        s = ch.settings
        out[ch.name] = {
            "webhook_path": "/line/events" + ("" if ch.name == "default" else f"/{ch.name}"),
            "line_channel_secret": "<set>" if s.line_channel_secret else "<unset>",
            "line_channel_secret_previous": "<set>" if s.line_channel_secret_previous else "<unset>",
            "line_channel_access_token": "<set>" if s.line_channel_access_token else "<unset>",
            "line_api_base_url": s.line_api_base_url,
            "braze_rest_endpoint": s.braze_rest_endpoint or "<unset>",
            "braze_api_key": "<set>" if s.braze_api_key else "<unset>",
            "braze_subscription_group_id": s.braze_subscription_group_id or "<unset>",
            "braze_workspace": ch.workspace_label,
            "braze_state_mode": s.braze_state_mode,
            "braze_track_rate_limit": str(s.braze_track_rate_limit),
            "resync_schedule": s.resync_schedule,
        }
    return out
