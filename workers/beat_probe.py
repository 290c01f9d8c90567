"""Beat's metrics port (``LINESYNC_BEAT_METRICS_PORT``): ``/metrics`` and ``/healthz``.

``/metrics``: the process collectors and ``linesync_beat_lock_held`` (1 in the
replica that holds the schedule lock). ``/healthz`` (workers/health.py): the
active replica beats after every scheduler tick (every 5 s at most, Redis
outages included); a standby replica, waiting for the lock, beats every
5 s from a small thread while it waits. Started by workers/beat.py before it
waits for the lock, so a standby answers its probe too.
"""

from __future__ import annotations

import threading

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, Gauge

from workers.health import Heartbeat
from workers.metrics_server import MetricsServer, serve

REGISTRY = CollectorRegistry()
for _c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_c)
LOCK_HELD = Gauge("linesync_beat_lock_held", "1 in the beat replica that holds the schedule lock", registry=REGISTRY)
# A standby replica's heartbeat period (s).
STANDBY_BEAT = 5.0
SETTING = "LINESYNC_BEAT_METRICS_PORT"


class BeatProbe:
    def __init__(self, port: int):
        self.port = port
        self.heartbeat = Heartbeat()
        self.server: MetricsServer | None = None
        self._standby = threading.Event()
        self._closed = threading.Event()

    def start(self) -> BeatProbe:
        """Serve the port (ConfigError naming LINESYNC_BEAT_METRICS_PORT when taken) and beat as a standby."""
        self.server = serve(self.port, REGISTRY, self.heartbeat.report, setting=SETTING)
        self.standby(True)
        threading.Thread(target=self._standby_beats, name="linesync-beat-standby", daemon=True).start()
        return self

    def standby(self, waiting: bool) -> None:
        """Waiting for the schedule lock (True) or holding it (False)."""
        if waiting:
            self._standby.set()
            LOCK_HELD.set(0)
            self.heartbeat.beat("standby")
        else:
            self._standby.clear()
            LOCK_HELD.set(1)

    def ticked(self, state: str = "active") -> None:
        if self._standby.is_set():
            self.standby(False)
        self.heartbeat.beat(state)

    def _standby_beats(self) -> None:
        while not self._closed.wait(STANDBY_BEAT):
            if self._standby.is_set():
                self.heartbeat.beat("standby")

    def close(self) -> None:
        self._closed.set()
        LOCK_HELD.set(0)
        if self.server is not None:
            self.server.close()
            self.server = None
