"""A worker bootstep that wakes idle pump slots every few seconds.

Beat is not needed for the pipeline to keep running: every worker's main
process checks the slots on its own timer (cheap: a few EXISTS per tick), so
a slot whose worker was killed is picked up again by any surviving worker
within the lease time plus one tick.
"""

from __future__ import annotations

import logging

from celery import bootsteps

log = logging.getLogger(__name__)

# Seconds between checks.
KICK_EVERY = 5.0


class Kicker(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None

    def start(self, worker):
        self.tref = worker.timer.call_repeatedly(KICK_EVERY, self.kick, priority=10)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    @staticmethod
    def kick():
        from workers.tasks import kick
        try:
            kick.run()
        except Exception as e:  # Redis or broker down: try again next tick
            log.warning("pump kick failed: %s", type(e).__name__)
