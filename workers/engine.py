"""A worker process's long-running loops: its share of the pipeline.

Each worker process runs one :class:`Engine` (started by the Celery bootstep in
workers/bootstep.py, or directly in tests and benchmarks):

- ``consume``: reads the webhook stream as consumer ``<name>/consume-<i>``;
- ``deliver``: ``LINESYNC_DELIVERY_CONCURRENCY`` sender threads, each claiming
  and settling one ``/users/track`` batch at a time, so that many requests are
  in flight per process while Braze takes its 100-300 ms to answer;
- ``identity``: one loop sending ``/users/identify`` and ``/users/merge``, reading the
  identity stream as consumer ``<name>/identity`` (workers/stream_consumer.py);
- ``heartbeat``: renews the process's presence (its lease ``{P}:worker:<name>``
  and its entry in ``{P}:workers``, workers/presence.py), takes or renews the
  exporter lease (one process exports the cluster-wide figures,
  workers/exporter.py), runs the housekeeping callbacks (resync wake-ups) and
  logs the delivery summary (workers/summary.py).

With several channels (``LINESYNC_CHANNELS_FILE``, workers/lanes.py) each channel is a lane
with loops of its own: one consume loop, its share of the sender threads
(``LINESYNC_DELIVERY_CONCURRENCY`` / channels, at least ``LANE_MIN_SENDERS``) and an identity
loop, each on the channel's keys with its Braze workspace's client and limiters. A channel's
backlog therefore never takes another channel's threads: a million-follower resync in one
channel leaves the others' senders free (only a shared workspace's rate limit is shared).

This module is the supervision: it starts the loops, restarts a step after an
error, and stops them.

It also serves the process's Prometheus ``/metrics`` and ``/healthz`` (the
heartbeat's age, workers/health.py) on ``LINESYNC_WORKER_METRICS_PORT``
(workers/metrics_server.py), with the cluster-wide figures read from Redis
(workers/cluster_metrics.py) while it holds the exporter lease. A taken port
stops :meth:`Engine.start` with a ConfigError naming that setting.

Capacity grows with the processes: nothing counts loops cluster-wide. The
cluster-wide limiter in Redis is the only ceiling. A process that dies loses
its lease; its stream entries are taken over by the others at once
(workers/stream_consumer.py) and its batches when their lease lapses. Every step is
idempotent, so a step cut short anywhere is simply done again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from shared.redis_conn import REDIS_DOWN
from workers import metrics
from workers.cluster_metrics import ClusterCollector
from workers.consume import Consumer
from workers.deliver import Deliverer
from workers.exporter import ExporterElection
from workers.health import Heartbeat
from workers.identity import IdentityDeliverer
from workers.metrics_server import MetricsServer, serve
from workers.presence import Presence, worker_name
from workers.runtime import Runtime
from workers.summary import DeliverySummary

log = logging.getLogger(__name__)

# Consume loops per worker process: parsing bodies is Python work, the apply script
# Redis work, so two loops keep both busy.
CONSUME_LOOPS = 2
# The heartbeat's period (s): well inside the worker lease (workers/presence.py LEASE_MS).
HEARTBEAT = 5.0
# After an unexpected error in a step, wait this long (s).
ERROR_SLEEP = 1.0
# Sender threads per channel at least, however many channels share the process's concurrency.
LANE_MIN_SENDERS = 2
# With many channels, each channel's watcher of an empty outbox looks less often: 0.01 s per
# channel, between deliver.IDLE_SLEEP (0.05) and this (s). A partial batch still waits for
# BRAZE_FLUSH_DELAY_MS (500) anyway; only a batch filled within this time is sent later.
LANE_MAX_IDLE_SLEEP = 0.25

# A channel served by this process: (name, its runtime, its consume hooks).
EngineLane = tuple[str, Runtime, Sequence]


class Engine:
    def __init__(self, rt: Runtime, *, name: str | None = None, concurrency: int | None = None,
                 consume_loops: int = CONSUME_LOOPS, hooks: Sequence = (),
                 housekeeping: Sequence[Callable[[], object]] = (), metrics_port: int | None = None,
                 lanes: Sequence[EngineLane] = ()):
        self.rt = rt
        self.name = name or worker_name()
        self.concurrency = concurrency or rt.settings.delivery_concurrency
        self.consume_loops = consume_loops
        self.hooks = list(hooks)
        self.housekeeping = list(housekeeping)
        self.presence = Presence(rt.r, rt.keys, rt.clock, self.name)
        self.metrics_port = rt.settings.worker_metrics_port if metrics_port is None else metrics_port
        self.metrics_server: MetricsServer | None = None
        self.heartbeat = Heartbeat()
        # Only a process that serves /metrics competes for the right to export the cluster figures.
        self.exporter = ExporterElection(rt.r, rt.keys, self.name)
        self.deliverer = Deliverer(rt.r, rt.keys, rt.settings, rt.braze, rt.track_sender, rt.clock,
                                   owner=self.name)
        self.lanes = list(lanes)  # several channels; none: the one channel of ``rt``
        self.deliverers = [Deliverer(lrt.r, lrt.keys, lrt.settings, lrt.braze, lrt.track_sender, lrt.clock,
                                     owner=self.name) for _, lrt, _ in self.lanes] or [self.deliverer]
        for d in self.deliverers if self.lanes else ():
            d.idle_sleep = min(LANE_MAX_IDLE_SLEEP, max(d.idle_sleep, 0.01 * len(self.lanes)))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._redis_down: set[str] = set()

    @property
    def exporting(self) -> bool:
        return self.exporter.exporting

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> Engine:
        self.metrics_server = serve(
            self.metrics_port,
            metrics.registry_with(ClusterCollector(lambda: self.rt.r, self.rt.keys, active=lambda: self.exporting),
                                  *self._channel_collectors()),
            self._health, setting="LINESYNC_WORKER_METRICS_PORT")
        self.presence.register()
        try:
            self._claim_exporter()
        except REDIS_DOWN:
            pass  # the heartbeat tries again
        loops: list[tuple[str, Callable[[], float]]] = []
        rests: dict[str, Callable] = {}  # a lane sender's pause is its channel's deliverer's to sleep
        if self.lanes:
            loops, rests = self._lane_loops()
        for i in range(0 if self.lanes else self.consume_loops):
            c = Consumer(self.rt.r, self.rt.keys, self.rt.settings, self.rt.clock, f"{self.name}/consume-{i}",
                         hooks=self.hooks, is_alive=self.is_alive, on_applied=self.deliverer.wakeup.added)
            loops.append((f"consume-{i}", c.step))
        for i in range(0 if self.lanes else self.concurrency):
            loops.append((f"deliver-{i}", self.deliverer.step))
        if not self.lanes:
            ident = IdentityDeliverer(self.rt.r, self.rt.keys, self.rt.settings, self.rt.braze,
                                      self.rt.identify_sender, self.rt.clock, consumer=f"{self.name}/identity",
                                      is_alive=self.is_alive)
            loops.append(("identity", ident.step))
        for loop_name, step in loops:
            # A sender's pause is the deliverer's to sleep: its watcher wakes when a batch's worth arrived.
            rest = self.deliverer.rest if loop_name.startswith("deliver-") else rests.get(loop_name)
            self._spawn(loop_name, self._loop, loop_name, step, rest)
        self._spawn("heartbeat", self._heartbeat)
        if self.lanes:
            log.info("worker %s: %d channels, each with %d consume loop(s), %d Braze requests in flight at "
                     "most and an identity sender", self.name, len(self.lanes), self._lane_consumers(),
                     self._lane_senders())
            return self
        log.info("worker %s: %d consume loops, %d Braze requests in flight at most, identity sender",
                 self.name, self.consume_loops, self.concurrency)
        return self

    def _channel_collectors(self) -> list:
        """Per-channel figures (workers/channel_metrics.py) when this engine serves several channels."""
        if not self.lanes:
            return []
        from workers.channel_metrics import ChannelCollector
        chans = [c for c in self.rt.settings.channels() if c.name in {name for name, _, _ in self.lanes}]
        return [ChannelCollector(lambda: self.rt.r, chans, active=lambda: self.exporting)]

    def _lane_senders(self) -> int:
        return max(LANE_MIN_SENDERS, self.concurrency // len(self.lanes))

    def _lane_consumers(self) -> int:
        return max(1, self.consume_loops // len(self.lanes))

    def _lane_loops(self) -> tuple[list[tuple[str, Callable[[], float]]], dict[str, Callable]]:
        """Each channel's own loops (named ``<channel>:<loop>``): no channel waits on another's backlog;
        and each sender's rest (its channel's deliverer's, woken by its channel's consumers)."""
        loops: list[tuple[str, Callable[[], float]]] = []
        rests: dict[str, Callable] = {}
        for (name, lrt, hooks), d in zip(self.lanes, self.deliverers):
            for i in range(self._lane_consumers()):
                c = Consumer(lrt.r, lrt.keys, lrt.settings, lrt.clock, f"{self.name}/consume-{i}",
                             hooks=hooks, is_alive=self.is_alive, record_destination=True,
                             on_applied=d.wakeup.added)
                loops.append((f"{name}:consume-{i}", c.step))
            for i in range(self._lane_senders()):
                loops.append((f"{name}:deliver-{i}", d.step))
                rests[f"{name}:deliver-{i}"] = d.rest
            ident = IdentityDeliverer(lrt.r, lrt.keys, lrt.settings, lrt.braze, lrt.identify_sender, lrt.clock,
                                      consumer=f"{self.name}/identity", is_alive=self.is_alive)
            loops.append((f"{name}:identity", ident.step))
        return loops, rests

    def stop(self, timeout: float = 15.0) -> None:
        """Let every loop finish its current step, then give the leases back."""
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
            self.exporter.release()
            self.presence.leave()
        except REDIS_DOWN:
            pass

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def is_alive(self, worker: str) -> bool:
        """Does the worker process ``worker`` hold its lease? (Any name of ours counts as alive.)"""
        return self.presence.is_alive(worker)

    def _health(self) -> tuple[bool, dict]:
        fresh, body = self.heartbeat.report()
        return fresh, {**body, "worker": self.name, "exporting": self.exporting}

    # -- loops --------------------------------------------------------------
    def _spawn(self, loop_name: str, target, *args) -> None:
        t = threading.Thread(target=target, args=args, name=f"linesync-{loop_name}", daemon=True)
        self._threads.append(t)
        t.start()

    def _loop(self, loop_name: str, step: Callable[[], float],
              rest: Callable[[float, threading.Event], None] | None = None) -> None:
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
                if rest is not None:
                    rest(pause, self._stop)
                else:
                    self._stop.wait(pause)

    def _counts(self) -> tuple[int, int]:
        """(batches finished, objects delivered) by every channel's deliverer."""
        got = [d.counts() for d in self.deliverers]
        return sum(b for b, _ in got), sum(o for _, o in got)

    def _claim_exporter(self) -> None:
        """Compete for the exporter lease, while serving /metrics."""
        if self.metrics_server is not None:
            self.exporter.claim()

    def _heartbeat(self) -> None:
        summary = DeliverySummary(self._counts)
        self.heartbeat.beat()
        while not self._stop.wait(HEARTBEAT):
            state = "ok"
            try:
                self.presence.renew()
                self._claim_exporter()
                for job in self.housekeeping:
                    job()
            except REDIS_DOWN as e:
                state = "redis_down"
                log.warning("heartbeat: Redis unavailable (%s)", type(e).__name__)
            except Exception:
                state = "error"
                log.exception("heartbeat failed")
            summary.tick()
            self.heartbeat.beat(state)
