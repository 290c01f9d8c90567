"""The Celery app, built by a factory from the same configuration as everything else."""

from __future__ import annotations

from datetime import timedelta

from celery.schedules import crontab
from kombu import Queue

from shared import queues
from shared.config import Settings, load_settings, parse_interval
from shared.keys import Keys
from shared.redis_conn import celery_broker, redbeat_settings
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


def make_app(settings: Settings | None = None):
    settings = settings or load_settings()
    keys = Keys(settings.key_prefix)
    from workers import runtime
    runtime.use_settings(settings)  # what the app runs (engine, tasks) uses the app's settings
    from workers.broker import App
    # App: its workers run without mingle, gossip and heartbeat; the transport rides out a
    # full Redis (workers/broker.py).
    app = App("linesync", include=["workers.tasks", "workers.resync_tasks"])
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
        beat_scheduler="workers.beat:Scheduler",  # redbeat's, riding out Redis outages
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
