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
    if as_json:
        click.echo(json.dumps(values, indent=2))
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
