"""What an operator command needs: settings, a checked Redis connection, the key names."""

from __future__ import annotations

import click
import redis

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
