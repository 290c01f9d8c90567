"""Celery signal handlers of the worker: logging set-up and the shutdown flag.

The pipeline's loops are not tasks: they run in each worker process's engine
(workers/engine.py, started by workers/bootstep.py). Celery tasks carry
discrete jobs only (workers/resync_tasks.py).
"""

from __future__ import annotations

import logging
import threading

from celery.signals import setup_logging, worker_shutting_down

from shared.logs import setup_logging as _setup_logging

# Celery's per-task log lines ("Task ... received", "... succeeded in ...").
TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")

_stopping = threading.Event()


def stopping() -> bool:
    return _stopping.is_set()


@worker_shutting_down.connect
def _on_shutdown(**_):
    _stopping.set()


@setup_logging.connect
def _logging(**_):
    from workers.runtime import settings
    s = settings()
    _setup_logging(s.log_format, s.log_level)
    # Celery logs every task it receives and finishes at INFO: at INFO, say what happened
    # (batches sent, pauses, failures), not that a job ran. DEBUG shows them again.
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
