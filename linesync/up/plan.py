"""`linesync up`'s plan: what it provides itself and which processes it runs.

Everything here is a pure function of the environment (and of the addresses
`up` picked): :func:`missing_services`, :func:`provided_variables`,
:func:`child_environment`, :func:`process_specs`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import click

from ingress.surface import DEFAULT_ADMIN_BIND
from linesync.supervisor import ProcessSpec
from shared.config import WEBHOOK_PATH

DEFAULT_BIND = "127.0.0.1:8080"
# The ingress's admin surface (/metrics, /v1/..., /status): `linesync ingress --admin-bind`.
DEFAULT_UP_ADMIN_BIND = DEFAULT_ADMIN_BIND
# Gunicorn workers for the ingress under `up` (a development machine needs few).
DEFAULT_INGRESS_WORKERS = 2
# Values given to the children when the sandboxes stand in for Braze and LINE.
# (UUID-shaped like a real Braze id, so `linesync doctor` accepts it.)
SANDBOX_SUBSCRIPTION_GROUP_ID = "5a4db0c5-0000-4000-8000-00000000a11e"
SANDBOX_BRAZE_API_KEY = "sandbox-braze-api-key"
SANDBOX_LINE_ACCESS_TOKEN = "sandbox-line-access-token"
SANDBOX_FOLLOWERS = 100
# The embedded Redis's memory ceiling: with noeviction, a full Redis refuses writes (the
# ingress answers 503, LINE redelivers) instead of the machine running out of memory.
EMBEDDED_REDIS_MAXMEMORY = "1gb"

# Supervisor tiers: higher tiers stop first (applications before what they use).
TIER_REDIS, TIER_SANDBOX, TIER_APP = 0, 1, 2


@dataclass(frozen=True)
class Missing:
    """Which services `up` must provide itself."""

    redis: bool
    braze: bool
    line: bool
    channel_secret: bool


def _unset(env: Mapping[str, str], name: str) -> bool:
    return not env.get(name, "").strip()


def missing_services(env: Mapping[str, str]) -> Missing:
    return Missing(
        redis=_unset(env, "REDIS_URL"),
        braze=_unset(env, "BRAZE_REST_ENDPOINT"),
        line=_unset(env, "LINE_API_BASE_URL"),
        channel_secret=_unset(env, "LINE_CHANNEL_SECRET"),
    )


@dataclass(frozen=True)
class Local:
    """Addresses of what `up` started itself (None: not started)."""

    redis_port: int | None = None
    braze_port: int | None = None
    line_port: int | None = None
    channel_secret: str | None = None
    public_url: str | None = None  # the local ingress, as LINESYNC_PUBLIC_URL (with the LINE sandbox)
    sandbox_ports: tuple[int, ...] = ()  # the channels' stand-ins (linesync/up/channels.py)


def local_public_url(env: Mapping[str, str], missing: Missing, ingress_url: str) -> str | None:
    """With the LINE sandbox and no LINESYNC_PUBLIC_URL of the user's, the local ingress is the public URL."""
    return ingress_url if missing.line and _unset(env, "LINESYNC_PUBLIC_URL") else None


def provided_variables(local: Local) -> dict[str, str]:
    """The variables `up` sets for its children, because it provides the service."""
    out: dict[str, str] = {}
    if local.redis_port is not None:
        out["REDIS_URL"] = f"redis://127.0.0.1:{local.redis_port}/0"
    if local.channel_secret is not None:
        out["LINE_CHANNEL_SECRET"] = local.channel_secret
    if local.line_port is not None:
        out["LINE_API_BASE_URL"] = f"http://127.0.0.1:{local.line_port}"
        out["LINE_CHANNEL_ACCESS_TOKEN"] = SANDBOX_LINE_ACCESS_TOKEN
    if local.public_url is not None:
        out["LINESYNC_PUBLIC_URL"] = local.public_url
    if local.braze_port is not None:
        out["BRAZE_REST_ENDPOINT"] = f"http://127.0.0.1:{local.braze_port}"
        out["BRAZE_API_KEY"] = SANDBOX_BRAZE_API_KEY
        out["BRAZE_SUBSCRIPTION_GROUP_ID"] = SANDBOX_SUBSCRIPTION_GROUP_ID
    return out


def child_environment(base: Mapping[str, str], local: Local) -> dict[str, str]:
    env = {**base, **provided_variables(local)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"expected HOST:PORT, got {bind!r}", param_hint="--bind")
    return host.strip("[]") or "0.0.0.0", int(port)


def local_url(bind: str) -> str:
    """Where this machine reaches a server bound to ``bind``."""
    host, port = parse_bind(bind)
    if host in ("0.0.0.0", "::", "*"):
        host = "127.0.0.1"
    return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"


def redis_server_argv(redis_server: str, port: int, data_dir: str) -> list[str]:
    # The same settings as shared.embedded_redis.EmbeddedRedis (and production: AOF, noeviction).
    return [
        redis_server,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", data_dir,
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--maxmemory-policy", "noeviction",
        "--maxmemory", EMBEDDED_REDIS_MAXMEMORY,
        "--daemonize", "no",
        "--loglevel", "warning",
    ]


def process_specs(
    env: Mapping[str, str],
    local: Local,
    *,
    python: str,
    bind: str,
    data_dir: str,
    redis_server: str | None = None,
    concurrency: int | None = None,
    ingress_workers: int = DEFAULT_INGRESS_WORKERS,
    admin_bind: str = DEFAULT_UP_ADMIN_BIND,
) -> list[ProcessSpec]:
    """Every process `up` runs, in start order."""
    cli = [python, "-m", "linesync.cli"]
    specs: list[ProcessSpec] = []
    if local.redis_port is not None:
        if redis_server is None:
            raise ValueError("redis_server is required when Redis is local")
        specs.append(ProcessSpec(
            "redis", redis_server_argv(redis_server, local.redis_port, os.path.join(data_dir, "redis")),
            env, tier=TIER_REDIS,
        ))
    if local.braze_port is not None:
        specs.append(ProcessSpec(
            "braze", [*cli, "sandbox", "braze", "--bind", f"127.0.0.1:{local.braze_port}",
                     "--api-key", env.get("BRAZE_API_KEY", SANDBOX_BRAZE_API_KEY)],
            env, tier=TIER_SANDBOX,
        ))
    if local.line_port is not None:
        # The channel secret reaches the sandbox through LINE_CHANNEL_SECRET in env (not argv: `ps`).
        public = (env.get("LINESYNC_PUBLIC_URL") or local_url(bind)).rstrip("/")
        specs.append(ProcessSpec(
            "line", [*cli, "sandbox", "line", "--bind", f"127.0.0.1:{local.line_port}",
                     "--access-token", env.get("LINE_CHANNEL_ACCESS_TOKEN", SANDBOX_LINE_ACCESS_TOKEN),
                     "--followers", str(SANDBOX_FOLLOWERS),
                     "--webhook-endpoint", public + WEBHOOK_PATH],
            env, tier=TIER_SANDBOX,
        ))
    worker = [*cli, "worker"]
    if concurrency is not None:
        worker += ["--concurrency", str(concurrency)]
    specs += [
        ProcessSpec("ingress", [*cli, "ingress", "--bind", bind, "--workers", str(ingress_workers),
                                "--admin-bind", admin_bind],
                    env, tier=TIER_APP),
        ProcessSpec("worker", worker, env, tier=TIER_APP),
        ProcessSpec("beat", [*cli, "beat"], env, tier=TIER_APP),
    ]
    return specs
