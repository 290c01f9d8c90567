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

from shared import queues
from shared.config import ROLE_REQUIREMENTS, load_settings

# The Celery app: `celery -A workers ...`.
CELERY_APP = "workers"
# redbeat keeps the schedule in Redis and holds a lock, so extra beat replicas wait.
BEAT_SCHEDULER = "redbeat.RedBeatScheduler"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_queues(text: str | None) -> tuple[str, ...]:
    """``"a,b"`` → ``("a", "b")``; every name must be one of :data:`shared.queues.ALL`."""
    if not text:
        return queues.ALL
    names = tuple(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    unknown = [q for q in names if q not in queues.ALL]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown queue {', '.join(unknown) or '(none)'}; choose from {', '.join(queues.ALL)}",
            param_hint="--queues",
        )
    return names


def node_name(hostname: str, pid: int) -> str:
    """Unique per process, so several workers on one host never share a Celery node name."""
    return f"linesync-{hostname}-{pid}@%h"


def worker_argv(
    *,
    python: str,
    queue_names: tuple[str, ...] = queues.ALL,
    concurrency: int | None = None,
    loglevel: str = "INFO",
    hostname: str,
    pid: int,
) -> list[str]:
    argv = [
        python, "-m", "celery", "-A", CELERY_APP, "worker",
        "--queues", ",".join(queue_names),
        "--loglevel", loglevel,
        "-n", node_name(hostname, pid),
    ]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    return argv


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
              help="Pool processes (default: LINESYNC_CONSUMERS + LINESYNC_FLUSHERS + 2).")
@click.option("--queues", "-Q", "queue_list", default=None, metavar="Q1,Q2",
              help=f"Queues to consume (default: all: {','.join(queues.ALL)}).")
@click.option("--loglevel", "-l", default=None, help="DEBUG, INFO, WARNING, ERROR (default: LINESYNC_LOG_LEVEL).")
def worker(concurrency: int | None, queue_list: str | None, loglevel: str | None) -> None:
    """Run a Celery worker (wraps `celery -A workers worker`)."""
    settings = load_settings().require(*ROLE_REQUIREMENTS["worker"])
    _exec(worker_argv(
        python=sys.executable,
        queue_names=parse_queues(queue_list),
        concurrency=concurrency,
        loglevel=_loglevel(loglevel, settings.log_level),
        hostname=socket.gethostname().split(".")[0],
        pid=os.getpid(),
    ))


@click.command()
@click.option("--loglevel", "-l", default=None, help="DEBUG, INFO, WARNING, ERROR (default: LINESYNC_LOG_LEVEL).")
def beat(loglevel: str | None) -> None:
    """Run the scheduler (wraps `celery -A workers beat`); extra replicas are safe."""
    settings = load_settings().require("redis_url")
    _exec(beat_argv(python=sys.executable, loglevel=_loglevel(loglevel, settings.log_level)))
