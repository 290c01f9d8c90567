"""A worker process's long-running loops: its share of the pipeline.

Each worker process runs one :class:`Engine` (started by the Celery bootstep in
workers/bootstep.py, or directly in tests and benchmarks):

- ``consume``: reads the webhook stream as consumer ``<name>/consume-<i>``;
- ``deliver``: ``LINESYNC_DELIVERY_CONCURRENCY`` sender threads, each claiming
  and settling one ``/users/track`` batch at a time, so that many requests are
  in flight per process while Braze takes its 100-300 ms to answer;
- ``identity``: one loop sending ``/users/identify`` and ``/users/merge``, reading the
  identity stream as consumer ``<name>/identity`` (workers/stream_consumer.py);
- ``heartbeat``: renews the process's lease ``{P}:worker:<name>`` and its entry
  in ``{P}:workers``, takes or renews the lease ``{P}:metrics:exporter`` (one
  process exports the cluster-wide figures), and runs the housekeeping
  callbacks (resync wake-ups).

It also serves the process's Prometheus ``/metrics`` on
``LINESYNC_WORKER_METRICS_PORT`` (workers/metrics.py), with the cluster-wide
figures read from Redis (workers/cluster_metrics.py) while it holds the exporter lease.

Capacity grows with the processes: nothing counts loops cluster-wide. The
cluster-wide limiter in Redis is the only ceiling. A process that dies loses
its lease; its stream entries are taken over by the others at once
(workers/stream_consumer.py) and its batches when their lease lapses. Every step is
idempotent, so a step cut short anywhere is simply done again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence

from shared.lease import Lease
from shared.redis_conn import REDIS_DOWN
from workers import metrics
from workers.cluster_metrics import ClusterCollector
from workers.consume import Consumer
from workers.deliver import Deliverer
from workers.identity import IdentityDeliverer
from workers.runtime import Runtime

log = logging.getLogger(__name__)

# Consume loops per worker process: parsing bodies is Python work, the apply script
# Redis work, so two loops keep both busy.
CONSUME_LOOPS = 2
# The worker lease lapses this long after its last renewal (ms); renewed every HEARTBEAT s.
LEASE_MS = 15_000
HEARTBEAT = 5.0
# {P}:workers entries older than this are dropped (ms).
FORGET_AFTER_MS = 3_600_000
# After an unexpected error in a step, wait this long (s).
ERROR_SLEEP = 1.0
# How often a summary of what was delivered is logged at INFO, when anything was (s).
SUMMARY_EVERY = 60.0


def worker_name() -> str:
    """Unique per process and start: host, pid, and a random part (pids are reused)."""
    return f"{socket.gethostname().split('.')[0]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Engine:
    def __init__(self, rt: Runtime, *, name: str | None = None, concurrency: int | None = None,
                 consume_loops: int = CONSUME_LOOPS, hooks: Sequence = (),
                 housekeeping: Sequence[Callable[[], object]] = (), metrics_port: int | None = None):
        self.rt = rt
        self.name = name or worker_name()
        self.concurrency = concurrency or rt.settings.delivery_concurrency
        self.consume_loops = consume_loops
        self.hooks = list(hooks)
        self.housekeeping = list(housekeeping)
        self.lease = Lease(rt.r, rt.keys.worker(self.name), LEASE_MS)
        self.metrics_port = rt.settings.worker_metrics_port if metrics_port is None else metrics_port
        self.metrics_server: metrics.MetricsServer | None = None
        # Only a process that serves /metrics competes for the right to export the cluster figures.
        self.exporter = Lease(rt.r, rt.keys.metrics_exporter, LEASE_MS)
        self.exporting = False
        self.deliverer = Deliverer(rt.r, rt.keys, rt.settings, rt.braze, rt.track_sender, rt.clock,
                                   owner=self.name)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._redis_down: set[str] = set()

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> Engine:
        self._register()
        self.metrics_server = metrics.serve(self.metrics_port, metrics.registry_with(
            ClusterCollector(lambda: self.rt.r, self.rt.keys, active=lambda: self.exporting)))
        try:
            self._claim_exporter()
        except REDIS_DOWN:
            pass  # the heartbeat tries again
        loops: list[tuple[str, Callable[[], float]]] = []
        for i in range(self.consume_loops):
            c = Consumer(self.rt.r, self.rt.keys, self.rt.settings, self.rt.clock, f"{self.name}/consume-{i}",
                         hooks=self.hooks, is_alive=self.is_alive)
            loops.append((f"consume-{i}", c.step))
        for i in range(self.concurrency):
            loops.append((f"deliver-{i}", self.deliverer.step))
        ident = IdentityDeliverer(self.rt.r, self.rt.keys, self.rt.settings, self.rt.braze, self.rt.identify_sender,
                                  self.rt.clock, consumer=f"{self.name}/identity", is_alive=self.is_alive)
        loops.append(("identity", ident.step))
        for loop_name, step in loops:
            self._spawn(loop_name, self._loop, loop_name, step)
        self._spawn("heartbeat", self._heartbeat)
        log.info("worker %s: %d consume loops, %d Braze requests in flight at most, identity sender",
                 self.name, self.consume_loops, self.concurrency)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Let every loop finish its current step, then give the lease back."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in self._threads if t.is_alive()]
        if left:
            log.warning("worker %s: %d loops still busy at shutdown (their work is taken over later)",
                        self.name, len(left))
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None
        try:
            if self.exporting:
                self.exporting = False
                metrics.exporting(False)
                self.exporter.release()
            self.lease.release()
            self.rt.r.zrem(self.rt.keys.workers, self.name)
        except REDIS_DOWN:
            pass

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def is_alive(self, worker: str) -> bool:
        """Does the worker process ``worker`` hold its lease? (Any name of ours counts as alive.)"""
        if not worker:
            return False
        return worker == self.name or bool(self.rt.r.exists(self.rt.keys.worker(worker)))

    # -- loops --------------------------------------------------------------
    def _spawn(self, loop_name: str, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=f"linesync-{loop_name}", daemon=True)
        self._threads.append(t)
        t.start()

    def _loop(self, loop_name: str, step: Callable[[], float]) -> None:
        while not self._stop.is_set():
            try:
                pause = step()
                if loop_name in self._redis_down:
                    self._redis_down.discard(loop_name)
                    log.info("%s: Redis is back", loop_name)
            except REDIS_DOWN as e:
                if loop_name not in self._redis_down:
                    self._redis_down.add(loop_name)
                    log.warning("%s: Redis unavailable (%s); retrying every %.0f s", loop_name, type(e).__name__,
                                ERROR_SLEEP)
                pause = ERROR_SLEEP
            except Exception:
                log.exception("%s: step failed", loop_name)
                pause = ERROR_SLEEP
            if pause:
                self._stop.wait(pause)

    def _register(self) -> None:
        """Take the worker lease and appear in the worker list. Redis away at start is no reason
        to stop: the heartbeat takes the lease once it answers, and the loops wait for it too."""
        try:
            now = int(self.rt.clock.now() * 1000)
            if not self.lease.take():
                raise RuntimeError(f"worker name {self.name} is already in use")
            p = self.rt.r.pipeline(transaction=False)
            p.zadd(self.rt.keys.workers, {self.name: now})
            p.zremrangebyscore(self.rt.keys.workers, "-inf", now - FORGET_AFTER_MS)
            p.execute()
        except REDIS_DOWN as e:
            log.warning("worker %s: Redis unavailable at start (%s); carrying on", self.name, type(e).__name__)

    def _claim_exporter(self) -> None:
        """Take or renew the exporter lease (while serving /metrics).

        Redis errors leave ``exporting`` as it was: an exporter cut off from Redis
        goes on exporting ``linesync_redis_up 0``, which is what the alert needs.
        """
        if self.metrics_server is None:
            return
        held = self.exporter.take()  # renews it when ours
        if held != self.exporting:
            log.info("worker %s %s the cluster-wide metrics", self.name, "exports" if held else "no longer exports")
            self.exporting = held
            metrics.exporting(held)

    def _heartbeat(self) -> None:
        last_summary, last_counts = time.monotonic(), self.deliverer.counts()
        while not self._stop.wait(HEARTBEAT):
            try:
                if not self.lease.renew() and not self.lease.take():
                    log.warning("worker %s: lease taken by another process", self.name)
                self.rt.r.zadd(self.rt.keys.workers, {self.name: int(self.rt.clock.now() * 1000)})
                self._claim_exporter()
                for job in self.housekeeping:
                    job()
            except REDIS_DOWN as e:
                log.warning("heartbeat: Redis unavailable (%s)", type(e).__name__)
            except Exception:
                log.exception("heartbeat failed")
            if time.monotonic() - last_summary >= SUMMARY_EVERY:
                counts = self.deliverer.counts()
                batches, objects = counts[0] - last_counts[0], counts[1] - last_counts[1]
                secs = time.monotonic() - last_summary
                if batches:
                    log.info("delivered %d objects to Braze in %d requests in the last %.0f s (%.0f objects/s)",
                             objects, batches, secs, objects / secs)
                last_summary, last_counts = time.monotonic(), counts
