"""The Celery bootstep that runs this worker process's engine (workers/engine.py).

Bootsteps are Celery's documented way to run something for the life of a
worker: plain ``celery -A workers worker`` starts the engine as ``linesync
worker`` does. It starts once the worker's pool is up and stops (letting each
loop finish its current step) on a warm shutdown. Everything the engine uses
comes from the app the worker runs (``worker.app``): its settings and the
runtime built from them (workers/celery_app.py).
"""

from __future__ import annotations

import gc
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
        from shared import migrate, redis_checks
        from shared.errors import ConfigError
        from shared.payload import describe
        from workers.lanes import engine_for
        rt = worker.app.runtime
        try:
            redis_checks.at_start(rt.r, "worker", log, rt.settings.redis_durability)
            # State and dedupe marks of the layout before buckets move once, leased (shared/migrate.py).
            migrate.run(rt.r, rt.keys, now_ms=int(rt.clock.now() * 1000),
                        dedupe_ttl=rt.settings.dedupe_ttl_seconds, log=log)
            log.info("%s", describe(rt.settings.braze_state_mode, rt.settings.braze_subscription_group_id))
            # Everything built so far (Celery, kombu, the runtime: 55,000-80,000 objects) lives as long as
            # the process: out of the collector's reach, a full collection no longer walks it, and
            # the pauses it cost every thread (50-180 ms on a busy host) go away.
            gc.collect()
            gc.freeze()
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
