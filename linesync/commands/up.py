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
the command itself only carries the plan out. They live in linesync/up/:
``plan.py`` (the plan), ``local_files.py`` (the data directory), ``run.py``
(the plan carried out under the supervisor).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from linesync.supervisor import DEFAULT_STOP_TIMEOUT, Supervisor
from linesync.up.local_files import (
    DEFAULT_DATA_DIR, channel_secret, env_file_text, exclusive, merged_environment, write_private,
)
from linesync.up.plan import (
    DEFAULT_BIND, DEFAULT_INGRESS_WORKERS, DEFAULT_UP_ADMIN_BIND, SANDBOX_SUBSCRIPTION_GROUP_ID, Local, Missing,
    child_environment, local_public_url, local_url, missing_services, parse_bind, process_specs,
    provided_variables,
)
from linesync.up.run import banner, run
from shared.config import ROLE_REQUIREMENTS, load_settings
from shared.embedded_redis import find_redis_server, free_port
from shared.errors import ConfigError, LinesyncError

# The plan's and the data directory's names, as they were when all of `up` lived here.
__all__ = [
    "DEFAULT_DATA_DIR", "SANDBOX_SUBSCRIPTION_GROUP_ID", "Local", "Missing", "banner", "channel_secret",
    "child_environment", "env_file_text", "exclusive", "local_public_url", "local_url", "missing_services",
    "parse_bind", "process_specs", "provided_variables", "up",
]


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
    several = bool(base.get("LINESYNC_CHANNELS_FILE", "").strip())
    # A malformed variable stops us here, with its name (the channels file is completed below).
    load_settings({**base, "LINESYNC_CHANNELS_FILE": ""} if several else base, dotenv=False)
    missing = missing_services(base)
    data = Path(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    (data / "redis").mkdir(exist_ok=True)
    chans = None
    if several:  # stand-ins per channel instead of the single channel's (linesync/up/channels.py)
        from linesync.up import channels as up_channels
        chans = up_channels.plan({**base, "PYTHONUNBUFFERED": "1"}, data, python=sys.executable,
                                 public_url=base.get("LINESYNC_PUBLIC_URL") or ingress_url, free_port=free_port)
        write_private(chans.path, chans.text)
        missing = Missing(redis=missing.redis, braze=False, line=False, channel_secret=False)

    local = Local(
        redis_port=free_port() if missing.redis else None,
        braze_port=free_port() if missing.braze else None,
        line_port=free_port() if missing.line else None,
        channel_secret=channel_secret(data / "channel_secret") if missing.channel_secret else None,
        public_url=(ingress_url if chans and chans.ports and not base.get("LINESYNC_PUBLIC_URL", "").strip()
                    else local_public_url(base, missing, ingress_url)),
        sandbox_ports=chans.ports if chans else (),
    )
    env = child_environment(base, local)
    if chans:
        env["LINESYNC_CHANNELS_FILE"] = str(chans.path.resolve())
    settings = load_settings(env, dotenv=False)
    settings.require(*ROLE_REQUIREMENTS["ingress"], *ROLE_REQUIREMENTS["worker"])
    specs = process_specs(
        env, local,
        python=sys.executable, bind=bind, data_dir=str(data),
        redis_server=find_redis_server() if missing.redis else None,
        concurrency=concurrency, ingress_workers=ingress_workers, admin_bind=admin_bind,
    )
    if chans:
        at = 1 if specs and specs[0].name == "redis" else 0
        specs[at:at] = list(chans.specs)  # the stand-ins start after Redis, before the applications
    provided = provided_variables(local)
    if chans:
        provided["LINESYNC_CHANNELS_FILE"] = env["LINESYNC_CHANNELS_FILE"]

    supervisor = Supervisor(stop_timeout=stop_timeout)
    with exclusive(data):
        write_private(data / "env", env_file_text(provided))
        if provided:
            supervisor.echo(f"linesync up: provided locally (also in {data}/env):")
            for k, v in provided.items():
                supervisor.echo(f"  export {k}={shlex.quote(v)}")
        supervisor.install_signal_handlers()
        return run(supervisor, specs, local, ingress_url, provided, str(data), admin_url=admin_url,
                   channels=up_channels.describe(chans) if chans else None)
