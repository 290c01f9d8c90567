"""`linesync sandbox braze|line`: run one local stand-in in the foreground until Ctrl-C."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import click

from shared.config import parse_rate

if TYPE_CHECKING:
    from sandboxes.server import Sandbox


def _bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter("expected HOST:PORT, e.g. 127.0.0.1:9100")
    return host or "127.0.0.1", int(port)


def _rate(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_rate(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


def _serve(sandbox: Sandbox, name: str, details: str) -> None:
    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)  # stop cleanly under `linesync up` / supervisors
    sandbox.bind()
    click.echo(f"{name} sandbox listening on {sandbox.url} ({details}); Ctrl-C stops it", err=True)
    sandbox.serve_forever()
    click.echo(f"{name} sandbox stopped", err=True)


@click.group()
def sandbox() -> None:
    """Local Braze and LINE stand-ins (in-memory; inspect them under /_sandbox/…)."""


@sandbox.command()
@click.option("--bind", "bind", default="127.0.0.1:9100", show_default=True, help="HOST:PORT to listen on.")
@click.option("--api-key", default="sandbox-key", show_default=True, help="Bearer key /users/* accept.")
@click.option("--rate-limit", default="3000/3s", show_default=True, callback=_rate,
              help="/users/track fixed-window limit, N/<period>.")
@click.option("--identify-rate-limit", default="20000/60s", show_default=True, callback=_rate,
              help="Shared limit of /users/identify and /users/merge.")
@click.option("--batch-size", default=75, show_default=True, type=click.IntRange(min=1),
              help="Most objects (attributes+events+purchases) per /users/track request.")
@click.option("--compact", is_flag=True, default=False,
              help="Keep each profile as its identifier and subscription states only (~120 B: for runs of "
                   "millions); /users/identify and /users/merge are then off (501).")
def braze(bind: str, api_key: str, rate_limit: str, identify_rate_limit: str, batch_size: int,
          compact: bool) -> None:
    """A Braze-compatible /users/track, /users/identify and /users/merge."""
    from sandboxes.braze import BrazeSandbox

    host, port = _bind(bind)
    box = BrazeSandbox(api_key=api_key, rate_limit=rate_limit, identify_rate_limit=identify_rate_limit,
                       batch_size=batch_size, host=host, port=port, compact=compact)
    _serve(box, "Braze", f"rate limit {rate_limit}, batch size {batch_size}{', compact' if compact else ''}")


@sandbox.command()
@click.option("--bind", "bind", default="127.0.0.1:9200", show_default=True, help="HOST:PORT to listen on.")
@click.option("--access-token", default="sandbox-token", show_default=True, help="Bearer token the API accepts.")
@click.option("--followers", default=0, show_default=True, type=click.IntRange(min=0),
              help="Number of generated followers (U + md5(i)).")
@click.option("--token-ttl", default=24 * 3600, show_default=True, type=click.FloatRange(min=0),
              help="Seconds a paging token stays valid.")
@click.option("--channel-secret", envvar="LINE_CHANNEL_SECRET", show_envvar=True, default=None,
              help="Signs the test webhook (POST /v2/bot/channel/webhook/test): the ingress's channel "
                   "secret, best given through the environment (keeps it out of `ps`). "
                   "[default: sandbox-channel-secret]")
@click.option("--webhook-endpoint", default=None, metavar="URL",
              help="The webhook URL on file at start (as if PUT /v2/bot/channel/webhook/endpoint).")
def line(bind: str, access_token: str, followers: int, token_ttl: float, channel_secret: str | None,
         webhook_endpoint: str | None) -> None:
    """A LINE-compatible /v2/bot/followers/ids, /v2/bot/info and webhook endpoint/test calls."""
    from sandboxes.line import DEFAULT_CHANNEL_SECRET, LineSandbox

    host, port = _bind(bind)
    try:
        box = LineSandbox(access_token=access_token, followers=followers, token_ttl_seconds=token_ttl,
                          channel_secret=channel_secret or DEFAULT_CHANNEL_SECRET,
                          webhook_endpoint=webhook_endpoint, host=host, port=port)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--webhook-endpoint") from None
    details = f"{followers} followers" + (f", webhook {webhook_endpoint}" if webhook_endpoint else "")
    _serve(box, "LINE", details)
