"""The Celery app, built by a factory from the settings it is given; the app carries them.

``create_app(settings)`` is the only place a Celery app is made: the worker and
beat entry point (``workers.app``, what ``celery -A workers`` and ``linesync
worker``/``beat`` load) calls it with the configuration read once, tests with
theirs. What runs inside the app reaches its configuration through the app:
``app.settings``, and ``app.runtime`` (workers/runtime.py: Redis, clock, Braze
client, limiters, senders) built from them on first use in each process: by
the engine's bootstep (``worker.app``) or a task (``self.app``).
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

from celery.schedules import crontab
from kombu import Queue
from kombu.utils.objects import cached_property

from shared import queues
from shared.config import Settings, parse_interval
from shared.keys import Keys
from shared.redis_conn import celery_broker, redbeat_settings
from workers import BEAT_SCHEDULER
from workers.broker import App
from workers.channel_schedule import resync_entries

# A beat replica that dies hands its lock over after this long (s) — the documented failover time.
BEAT_LOCK_TIMEOUT = 30
# Task threads per worker process: tasks are discrete jobs (a resync chunk, its start),
# the pipeline's loops run in the engine beside them.
TASK_THREADS = 2


def resync_schedule(text: str):
    """RESYNC_SCHEDULE as a Celery schedule: cron fields or ``every <duration>``."""
    if text.startswith("every "):
        return timedelta(seconds=parse_interval(text))
    minute, hour, dom, month, dow = text.split()
    return crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow)


class LinesyncCelery(App):
    """A Celery app that carries linesync's settings and builds its worker runtime from them.

    Its workers run without mingle, gossip and heartbeat and its transport rides out a
    full Redis (workers/broker.py's App and Worker, which workers/console.py's Worker extends)."""

    def __init__(self, settings: Settings, **kwargs):
        super().__init__("linesync", log="workers.console:Logging", **kwargs)
        self.settings = settings
        self._runtime = None
        self._runtime_pid: int | None = None
        self._runtime_lock = threading.Lock()

    @property
    def runtime(self):
        """This process's runtime, built from ``self.settings`` on first use (again in a forked child)."""
        from workers.runtime import build
        with self._runtime_lock:
            if self._runtime is None or self._runtime_pid != os.getpid():
                self._runtime, self._runtime_pid = build(self.settings), os.getpid()
            return self._runtime

    # Celery's worker and beat programs, printing only JSON lines in JSON log mode (workers/console.py).
    @cached_property
    def Worker(self):
        return self.subclass_with_self("workers.console:Worker")

    @cached_property
    def Beat(self):
        return self.subclass_with_self("workers.console:Beat")


def create_app(settings: Settings) -> LinesyncCelery:
    """The Celery app of the workers and beat, configured from ``settings`` (which it carries)."""
    keys = Keys(settings.key_prefix)
    app = LinesyncCelery(settings, include=["workers.resync_tasks"])
    broker = celery_broker(settings.redis_url)  # sentinel:// becomes kombu's sentinel transport
    app.conf.update(
        broker_url=broker["broker_url"],
        broker_transport=broker["broker_transport"],
        broker_connection_retry_on_startup=True,
        # Every key kombu writes (queues, unacknowledged messages, bindings, the fanout
        # channels of inspect/control and events) starts with {P}:celery:, so installs with
        # different LINESYNC_KEY_PREFIX values share a Redis database without seeing each
        # other's work. Unacknowledged messages of a dead worker come back after the
        # visibility timeout; it must exceed the longest task (a resync chunk, ~20 s), and
        # nothing depends on it to recover (leases and checkpoints do), so it is generous.
        broker_transport_options={"global_keyprefix": keys.celery_prefix, "visibility_timeout": 900,
                                  **broker.get("broker_transport_options", {})},
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A task is acknowledged only after it ran: a killed worker's task is delivered again.
        # Every task is safe to run twice (leases, idempotent Redis scripts, checkpoints).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # One process per worker: a few task threads for discrete jobs; the engine's loops
        # (workers/bootstep.py) run beside them. No forked pool: lean, and no fork after threads.
        worker_pool="threads",
        worker_concurrency=TASK_THREADS,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # Plain `celery -A workers worker` (no -Q) consumes the one queue linesync uses.
        task_queues=[Queue(queues.TASKS)],
        task_default_queue=queues.TASKS,
        worker_hijack_root_logger=False,
        beat_scheduler=BEAT_SCHEDULER,  # redbeat's, riding out Redis outages
        **redbeat_settings(settings.redis_url),
        redbeat_key_prefix=keys.redbeat_prefix,
        redbeat_lock_key=keys.redbeat_lock,
        redbeat_lock_timeout=BEAT_LOCK_TIMEOUT,
        beat_max_loop_interval=5,
        beat_schedule=resync_entries(settings, resync_schedule),  # one per channel (workers/channel_schedule.py)
    )
    from workers.bootstep import EngineStep
    app.steps["worker"].add(EngineStep)
    return app
