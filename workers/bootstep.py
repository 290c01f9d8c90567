"""The Celery bootstep that runs this worker process's engine (workers/engine.py).

Bootsteps are Celery's documented way to run something for the life of a
worker: plain ``celery -A workers worker`` starts the engine as ``linesync
worker`` does. It starts once the worker's pool is up and stops (letting each
loop finish its current step) on a warm shutdown.
"""

from __future__ import annotations

import logging

from celery import bootsteps

log = logging.getLogger(__name__)


class EngineStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}
    label = "linesync engine"

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.engine = None

    def start(self, worker):
        from shared import redis_checks
        from shared.errors import ConfigError
        from shared.payload import describe
        from workers.lanes import engine_for
        from workers.runtime import runtime
        rt = runtime()
        try:
            redis_checks.at_start(rt.r, "worker", log, rt.settings.redis_durability)
            log.info("%s", describe(rt.settings.braze_state_mode, rt.settings.braze_subscription_group_id))
            # A taken LINESYNC_WORKER_METRICS_PORT is a ConfigError too.
            self.engine = engine_for(rt).start()  # every channel's loops (workers/lanes.py)
        except ConfigError as e:
            log.critical("%s", e)
            raise SystemExit(2) from None  # Celery stops the worker with this exit code

    def stop(self, worker):
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def shutdown(self, worker):
        self.stop(worker)
