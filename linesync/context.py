"""What an operator command needs: settings, a checked Redis connection, the key names."""

from __future__ import annotations

import click
import redis

from shared.channels import Channel
from shared.config import ROLE_REQUIREMENTS, Settings, load_settings
from shared.errors import StoreUnavailable
from shared.keys import Keys
from shared.redis_conn import client, ping

# Operator commands may scan large structures; give Redis longer than the ingress does.
CLI_SOCKET_TIMEOUT = 5.0


def connect() -> tuple[Settings, redis.Redis, Keys]:
    """Settings (REDIS_URL required), a Redis client that answered PING, and the keys."""
    settings = load_settings().require(*ROLE_REQUIREMENTS["cli"])
    r = client(settings.redis_url, socket_timeout=CLI_SOCKET_TIMEOUT)
    try:
        ping(r)
    except StoreUnavailable as e:
        raise click.ClickException(f"{e}: is REDIS_URL right and Redis running?") from e
    return settings, r, Keys(settings.key_prefix)


def channel_option(f):
    """``--channel NAME``: the command's scope, one channel of LINESYNC_CHANNELS_FILE."""
    return click.option("--channel", "channel", metavar="NAME",
                        help="Only this channel (of LINESYNC_CHANNELS_FILE); default: every channel, "
                             "or the only one.")(f)


def connect_channels(name: str | None) -> tuple[Settings, redis.Redis, list[Channel]]:
    """Like :func:`connect`, with the channels the command covers: ``name``'s, or every one."""
    settings, r, _ = connect()
    chans = list(settings.channels())
    if name is None:
        return settings, r, chans
    ch = settings.channel(name)
    if ch is None:
        raise click.UsageError(f"no channel {name!r} (channels: {', '.join(c.name for c in chans)})")
    return settings, r, [ch]


def connect_one(name: str | None) -> tuple[Settings, redis.Redis, Channel]:
    """For commands about one channel's users: ``name``'s, or the only one."""
    settings, r, chans = connect_channels(name)
    if len(chans) > 1:
        raise click.UsageError("this deployment serves several channels: say which with --channel NAME "
                               f"({', '.join(c.name for c in chans)})")
    return settings, r, chans[0]
