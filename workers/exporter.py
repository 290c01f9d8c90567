"""Which worker process exports the cluster-wide figures: the holder of one lease.

The cluster-wide figures (workers/cluster_metrics.py) are the same whichever
process reads them, so one process exports them: the one holding
``{P}:metrics:exporter``. Only a process that serves /metrics competes; its
engine's heartbeat takes or renews the lease, and another process takes over
within a heartbeat of the holder's lease lapsing.
"""

from __future__ import annotations

import logging

import redis

from shared.keys import Keys
from shared.lease import Lease
from workers import metrics
from workers.presence import LEASE_MS

log = logging.getLogger(__name__)


class ExporterElection:
    def __init__(self, r: redis.Redis, keys: Keys, name: str):
        self.name = name
        self.lease = Lease(r, keys.metrics_exporter, LEASE_MS)
        self.exporting = False

    @property
    def token(self) -> str:
        return self.lease.token

    def claim(self) -> None:
        """Take or renew the lease.

        Redis errors leave ``exporting`` as it was: an exporter cut off from Redis
        goes on exporting ``linesync_redis_up 0``, which is what the alert needs.
        """
        held = self.lease.take()  # renews it when ours
        if held != self.exporting:
            log.info("worker %s %s the cluster-wide metrics", self.name, "exports" if held else "no longer exports")
            self._set(held)

    def release(self) -> None:
        """Stop exporting and give the lease back (Redis errors are the caller's)."""
        if self.exporting:
            self._set(False)
            self.lease.release()

    def _set(self, on: bool) -> None:
        self.exporting = on
        metrics.exporting(on)
