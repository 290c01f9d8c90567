"""`linesync worker` and `linesync beat`: check the configuration, then exec Celery.

The configuration is validated here, before ``exec``, so a missing variable
stops the process with one line naming it instead of a Celery traceback. After
``exec`` the process *is* Celery (same pid, signals go straight to it), which
is what a container runtime or ``linesync up`` expects to supervise.
"""

from __future__ import annotations

import os
import socket
import sys

import click

from shared.config import LOG_LEVELS, ROLE_REQUIREMENTS, env_names, load_settings
from workers import BEAT_SCHEDULER, CELERY_APP  # the package's names only: Celery is not imported here

# Set for the exec'd worker unless already set. glibc gives a many-threaded process up to
# 8 malloc arenas per core, each growing on its own: with ~70 threads that is RSS that grows
# for minutes before it levels off. Two arenas keep the worker's memory flat (bench/pipeline).
WORKER_ENV_DEFAULTS = {"MALLOC_ARENA_MAX": "2"}
# --concurrency and --loglevel set these variables for the exec'd process, whose app reads them.
CONCURRENCY_ENV = env_names()["delivery_concurrency"]
LOG_LEVEL_ENV = env_names()["log_level"]


def node_name(hostname: str, pid: int) -> str:
    """Unique per process, so several workers on one host never share a Celery node name."""
    return f"linesync-{hostname}-{pid}@%h"


def worker_argv(*, python: str, loglevel: str = "INFO", hostname: str, pid: int) -> list[str]:
    return [
        python, "-m", "celery", "-A", CELERY_APP, "worker",
        "--loglevel", loglevel,
        "-n", node_name(hostname, pid),
    ]


def beat_argv(*, python: str, loglevel: str = "INFO") -> list[str]:
    return [python, "-m", "celery", "-A", CELERY_APP, "beat", "-S", BEAT_SCHEDULER, "--loglevel", loglevel]


def _exec(argv: list[str]) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def _loglevel(value: str | None, default: str) -> str:
    level = (value or default).upper()
    if level not in LOG_LEVELS:
        raise click.BadParameter(f"expected one of {', '.join(LOG_LEVELS)}", param_hint="--loglevel")
    return level


@click.command()
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Braze requests this worker process keeps in flight (default: LINESYNC_DELIVERY_CONCURRENCY, 64).")
@click.option("--loglevel", "-l", default=None, help="DEBUG, INFO, WARNING, ERROR (default: LINESYNC_LOG_LEVEL).")
def worker(concurrency: int | None, loglevel: str | None) -> None:
    """Run a worker process (wraps `celery -A workers worker`): its share of the whole pipeline."""
    settings = load_settings().require(*ROLE_REQUIREMENTS["worker"])
    level = _loglevel(loglevel, settings.log_level)
    if concurrency is not None:
        os.environ[CONCURRENCY_ENV] = str(concurrency)
    os.environ[LOG_LEVEL_ENV] = level
    for name, value in WORKER_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    _exec(worker_argv(
        python=sys.executable,
        loglevel=level,
        hostname=socket.gethostname().split(".")[0],
        pid=os.getpid(),
    ))


@click.command()
@click.option("--loglevel", "-l", default=None, help="DEBUG, INFO, WARNING, ERROR (default: LINESYNC_LOG_LEVEL).")
def beat(loglevel: str | None) -> None:
    """Run the scheduler (wraps `celery -A workers beat`); extra replicas are safe."""
    settings = load_settings().require("redis_url")
    level = _loglevel(loglevel, settings.log_level)
    os.environ[LOG_LEVEL_ENV] = level
    _exec(beat_argv(python=sys.executable, loglevel=level))
