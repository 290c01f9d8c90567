"""The Celery app, built from the same configuration as everything else."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.schedules import crontab

from shared import queues
from shared.config import Settings, load_settings, parse_interval

# Beat also asks for pump wake-ups this often (s); workers do it themselves too (workers/kicker.py).
KICK_EVERY = 5.0
# A beat replica that dies hands its lock over after this long (s) — the documented failover time.
BEAT_LOCK_TIMEOUT = 30


def resync_schedule(text: str):
    """RESYNC_SCHEDULE as a Celery schedule: cron fields or ``every <duration>``."""
    if text.startswith("every "):
        return timedelta(seconds=parse_interval(text))
    minute, hour, dom, month, dow = text.split()
    return crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow)


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
    app = Celery("linesync", include=["workers.tasks", "workers.resync_tasks"])
    app.conf.update(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        # A task is acknowledged only after it ran: a killed worker's task is delivered again.
        # Every task is safe to run twice (leases, idempotent Redis scripts, checkpoints).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # One message at a time per process: pump tasks run for ~3 s, and a prefetched
        # wake-up stuck behind one would only delay its slot.
        worker_prefetch_multiplier=1,
        # Each pump slot occupies a pool process while it runs (consumers, flushers and one
        # identify/merge sender), plus one for control tasks (kick, resync): fewer would
        # leave slots waiting in the queue.
        worker_concurrency=settings.consumers + settings.flushers + 2,
        # Unacknowledged messages of a dead worker come back after this. It must exceed
        # the longest task (pumps ~3 s, one resync chunk ~60 s); the pumps and the resync
        # do not depend on it to recover (leases + beat's kick, checkpoints), so it can be
        # generous. No task uses countdown retries, which would have to stay below it.
        broker_transport_options={"visibility_timeout": 900},
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue=queues.CONTROL,
        task_routes={
            "linesync.pump.consume": {"queue": queues.CONSUME},
            "linesync.pump.deliver": {"queue": queues.DELIVER},
            "linesync.pump.identity": {"queue": queues.DELIVER},
        },
        worker_hijack_root_logger=False,
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.redis_url,
        redbeat_key_prefix="{" + settings.key_prefix + "}:redbeat",
        redbeat_lock_key="{" + settings.key_prefix + "}:redbeat:lock",
        redbeat_lock_timeout=BEAT_LOCK_TIMEOUT,
        beat_max_loop_interval=5,
        beat_schedule={
            "kick-pumps": {"task": "linesync.kick", "schedule": timedelta(seconds=KICK_EVERY)},
            "resync-followers": {
                "task": "linesync.resync.start",
                "schedule": resync_schedule(settings.resync_schedule),
                "kwargs": {"reason": "schedule"},
            },
        },
    )
    from workers.kicker import Kicker
    app.steps["worker"].add(Kicker)
    return app
