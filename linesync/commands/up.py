"""`linesync up`: everything in one terminal, for trying linesync and for development.

What is missing from the environment (and ``./.env``) is provided locally:

- ``REDIS_URL`` unset → a private redis-server, data kept in ``.linesync/redis``
  (AOF on, so queued work survives a restart of ``linesync up``);
- ``BRAZE_REST_ENDPOINT`` unset → the Braze sandbox (``linesync sandbox braze``);
- ``LINE_API_BASE_URL`` unset → the LINE sandbox (``linesync sandbox line``);
- ``LINE_CHANNEL_SECRET`` unset → a generated secret kept in ``.linesync/channel_secret``.

With the LINE sandbox, its webhook URL on file is the local ingress's
``/line/events`` and it signs test deliveries with the channel secret, and
``LINESYNC_PUBLIC_URL`` (unless set) is the local ingress: ``linesync doctor
--send-test`` passes against an untouched ``linesync up``.

Then ingress, worker and beat run as child processes under a
:class:`~linesync.supervisor.Supervisor`. What ``up`` provided is printed and
written to ``.linesync/env`` for other shells (``set -a; . .linesync/env; set +a``).

Everything that decides *what* to run is a pure function of the environment
(:func:`missing_services`, :func:`child_environment`, :func:`process_specs`);
the command itself only carries the plan out.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shlex
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from linesync.supervisor import (
    DEFAULT_STOP_TIMEOUT,
    ChildExited,
    ProcessSpec,
    StopRequested,
    Supervisor,
)
from ingress.surface import DEFAULT_ADMIN_BIND
from shared.config import ROLE_REQUIREMENTS, WEBHOOK_PATH, load_settings
from shared.embedded_redis import find_redis_server, free_port
from shared.errors import ConfigError, LinesyncError

# Where `up` keeps its state, relative to the current directory.
DEFAULT_DATA_DIR = ".linesync"
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
# How long services get to accept connections before `up` gives up on them.
REDIS_START_TIMEOUT = 15.0
SANDBOX_START_TIMEOUT = 20.0
# After this long without /readyz answering 200, `up` says so (and keeps waiting).
READY_WARN_AFTER = 60.0
READY_PROBE_INTERVAL = 0.5

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


def channel_secret(path: Path) -> str:
    """The secret kept in ``path``, created on first use (readable by the owner only)."""
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    secret = secrets.token_hex(16)  # LINE channel secrets are 32 hex digits too
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def env_file_text(variables: Mapping[str, str]) -> str:
    lines = ["# Written by `linesync up`; load with: set -a; . .linesync/env; set +a"]
    lines += [f"{k}={shlex.quote(v)}" for k, v in variables.items()]
    return "\n".join(lines) + "\n"


def write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def merged_environment() -> dict[str, str]:
    """``./.env`` overlaid by the process environment, as shared.config reads them."""
    env: dict[str, str] = {}
    if os.path.exists(".env"):
        from dotenv import dotenv_values

        env = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    return {**env, **os.environ}


@contextlib.contextmanager
def exclusive(data_dir: Path) -> Iterator[None]:
    """One `linesync up` per data directory: two would share one Redis data dir."""
    with open(data_dir / "up.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LinesyncError(
                f"another `linesync up` is running with {data_dir}/ (stop it, or use --data-dir)"
            ) from None
        yield


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def banner(ingress: str, provided: Mapping[str, str], data_dir: str, admin: str | None = None) -> str:
    admin = admin or local_url(DEFAULT_UP_ADMIN_BIND)
    rows = [
        ("webhook URL", f"{ingress}/line/events"),
        ("readiness", f"{ingress}/readyz"),
        ("status page", f"{admin}/status"),
        ("metrics", f"{admin}/metrics"),
        ("admin API", f"{admin}/v1/... (with LINESYNC_ADMIN_TOKEN)"),
    ]
    if "REDIS_URL" in provided:
        rows.append(("Redis", f"{provided['REDIS_URL']} (embedded, data in {data_dir}/redis)"))
    if "BRAZE_REST_ENDPOINT" in provided:
        rows.append(("Braze sandbox", provided["BRAZE_REST_ENDPOINT"]))
    if "LINE_API_BASE_URL" in provided:
        rows.append(("LINE sandbox", f"{provided['LINE_API_BASE_URL']} ({SANDBOX_FOLLOWERS} followers)"))
    width = max(len(k) for k, _ in rows)
    lines = ["", "linesync is up."] + [f"  {k:<{width}}  {v}" for k, v in rows]
    if provided:
        lines.append(f"In another terminal: set -a; . {data_dir}/env; set +a")
    lines += [
        f"Then try: linesync send-test-webhook --url {ingress}/line/events ; linesync status",
        "Check the whole chain: linesync doctor --send-test",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


@click.command()
@click.option("--bind", default=DEFAULT_BIND, show_default=True, help="Ingress address HOST:PORT.")
@click.option("--admin-bind", default=DEFAULT_UP_ADMIN_BIND, show_default=True,
              help="Ingress admin address HOST:PORT (/metrics, /v1/..., /status).")
@click.option("--concurrency", type=click.IntRange(min=1), default=None, help="Braze requests the worker keeps in flight (LINESYNC_DELIVERY_CONCURRENCY).")
@click.option("--ingress-workers", type=click.IntRange(min=1), default=DEFAULT_INGRESS_WORKERS,
              show_default=True, help="Gunicorn workers for the ingress.")
@click.option("--data-dir", default=DEFAULT_DATA_DIR, show_default=True,
              help="Where the embedded Redis data, channel secret and env file are kept.")
@click.option("--stop-timeout", type=float, default=DEFAULT_STOP_TIMEOUT, show_default=True,
              help="Seconds each process gets to stop before it is killed.")
def up(bind: str, admin_bind: str, concurrency: int | None, ingress_workers: int, data_dir: str,
       stop_timeout: float) -> None:
    """Run everything locally: Redis, sandboxes, ingress, worker and beat; Ctrl-C stops all."""
    try:
        code = _up(bind, concurrency, ingress_workers, data_dir, stop_timeout, admin_bind=admin_bind)
    except ConfigError:
        raise  # linesync.cli prints it as one line
    except LinesyncError as e:
        raise click.ClickException(str(e)) from None
    # SystemExit, not ctx.exit(): click's standalone_mode=False (linesync.cli.main)
    # turns ctx.exit(code) into a return value, and the code would be lost.
    sys.exit(code)


def _up(bind: str, concurrency: int | None, ingress_workers: int, data_dir: str, stop_timeout: float,
        *, admin_bind: str = DEFAULT_UP_ADMIN_BIND) -> int:
    ingress_url = local_url(bind)
    admin_url = local_url(admin_bind)
    base = merged_environment()
    load_settings(base, dotenv=False)  # a malformed variable stops us here, with its name
    missing = missing_services(base)
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    (data / "redis").mkdir(exist_ok=True)

    local = Local(
        redis_port=free_port() if missing.redis else None,
        braze_port=free_port() if missing.braze else None,
        line_port=free_port() if missing.line else None,
        channel_secret=channel_secret(data / "channel_secret") if missing.channel_secret else None,
        public_url=local_public_url(base, missing, ingress_url),
    )
    env = child_environment(base, local)
    settings = load_settings(env, dotenv=False)
    settings.require(*ROLE_REQUIREMENTS["ingress"], *ROLE_REQUIREMENTS["worker"])
    specs = process_specs(
        env, local,
        python=sys.executable, bind=bind, data_dir=str(data),
        redis_server=find_redis_server() if missing.redis else None,
        concurrency=concurrency, ingress_workers=ingress_workers, admin_bind=admin_bind,
    )
    provided = provided_variables(local)

    supervisor = Supervisor(stop_timeout=stop_timeout)
    with exclusive(data):
        write_private(data / "env", env_file_text(provided))
        if provided:
            supervisor.echo(f"linesync up: provided locally (also in {data}/env):")
            for k, v in provided.items():
                supervisor.echo(f"  export {k}={shlex.quote(v)}")
        supervisor.install_signal_handlers()
        return _run(supervisor, specs, local, ingress_url, provided, str(data), admin_url=admin_url)


def _run(
    supervisor: Supervisor,
    specs: list[ProcessSpec],
    local: Local,
    ingress_url: str,
    provided: Mapping[str, str],
    data_dir: str,
    *,
    admin_url: str | None = None,
) -> int:
    try:
        for spec in specs:
            if spec.tier == TIER_APP:
                continue
            supervisor.start(spec)
        if local.redis_port is not None:
            _wait(supervisor, "redis", lambda: port_open(local.redis_port), REDIS_START_TIMEOUT)
        for name, port in (("braze", local.braze_port), ("line", local.line_port)):
            if port is not None:
                _wait(supervisor, f"{name} sandbox", lambda p=port: port_open(p), SANDBOX_START_TIMEOUT)
        for spec in specs:
            if spec.tier == TIER_APP:
                supervisor.start(spec)
    except StopRequested:
        supervisor.echo("linesync up: stopping ...")
        supervisor.stop()
        return 0
    except ChildExited as e:
        supervisor.echo(f"linesync up: {e}; stopping everything")
        supervisor.stop()
        return 1
    except LinesyncError as e:
        supervisor.echo(f"linesync up: {e}; stopping everything")
        supervisor.stop()
        return 1
    except BaseException:
        supervisor.stop()
        raise

    started = time.monotonic()
    state = {"ready": False, "warned": False, "next_probe": 0.0}

    def on_tick() -> None:
        now = time.monotonic()
        if state["ready"] or now < state["next_probe"]:
            return
        state["next_probe"] = now + READY_PROBE_INTERVAL
        if http_ok(f"{ingress_url}/readyz"):
            state["ready"] = True
            supervisor.echo(banner(ingress_url, provided, data_dir, admin_url))
        elif not state["warned"] and now - started > READY_WARN_AFTER:
            state["warned"] = True
            supervisor.echo(f"linesync up: {ingress_url}/readyz has not answered 200 after "
                            f"{READY_WARN_AFTER:.0f}s; still waiting")

    try:
        return supervisor.run(on_tick)
    except BaseException:
        supervisor.stop()
        raise


def _wait(supervisor: Supervisor, what: str, predicate: Callable[[], bool], timeout: float) -> None:
    if not supervisor.wait_until(predicate, timeout):
        raise LinesyncError(f"{what} did not accept connections within {timeout:.0f}s")
