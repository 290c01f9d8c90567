"""Celery's broker: kombu's Redis transport, made to ride out a full Redis.

At ``maxmemory`` with ``noeviction`` Redis refuses every command that may grow
memory (``OOM command not allowed``). kombu treats that answer as a channel
error, and Celery as unrecoverable: a worker (re)started while Redis is full
exits at once — exactly when it must come up and drain the backlog (the
engine's own scripts are flagged ``allow-oom``: they free more than they write).

Here the few writes Celery's layer makes for itself are "full: skip, try again
later" rather than fatal:

1. binding a queue (``SADD`` of kombu's binding table, at start for the task
   queue and the pidbox) is remembered and written again, with backoff, once
   Redis has room; consuming does not need it (``BRPOP`` reads the queue key,
   the pidbox subscribes by name);
2. restoring unacknowledged tasks (a ``SET NX`` mutex, then pushes) is skipped
   for this round: they stay recorded and come back on a later round;
3. recording a task just taken (``ZADD``/``HSET`` of the unacknowledged set)
   goes through an ``allow-oom`` script, a few hundred bytes per task in flight
   (Redis 7+; on older servers the task runs recorded only in memory);
4. putting unacknowledged tasks back at shutdown is left to the visibility
   timeout.

Mingle, gossip and the worker heartbeat (start-up chatter and events the engine
does not use) are off: see :class:`Worker`. ``celery inspect ping`` still works
(the pidbox subscribes, and its reply is written once Redis has room).
``sentinel://`` URLs use :class:`SentinelTransport`, the same with kombu's
Sentinel channel.
"""

from __future__ import annotations

import logging
import time

from celery import Celery
from celery.apps.worker import Worker as CeleryWorker
from kombu.utils.objects import cached_property
from kombu.transport import redis as kombu_redis
from kombu.transport.virtual import base as virtual
from redis.exceptions import OutOfMemoryError, ResponseError

from shared.backoff import backoff_cap

log = logging.getLogger(__name__)

# Worker options linesync always sets: no start-up broadcast (mingle), no event traffic
# (gossip, heartbeat). The engine coordinates through its own keys, not Celery's events.
QUIET_WORKER = {"without_mingle": True, "without_gossip": True, "without_heartbeat": True}
# A binding refused while Redis was full is tried again after this long, doubling up to the cap (s).
REBIND_BASE_SECONDS = 1.0
REBIND_MAX_SECONDS = 30.0
# At most one "Redis is full" warning per this many seconds per channel.
WARN_EVERY_SECONDS = 60.0

# Records a task just taken (kombu's QoS.append), allowed when Redis is full.
# KEYS[1] unacked index (zset; prefixed by kombu's client), KEYS[2] unacked hash (prefixed here)
# ARGV[1] delivery tag, ARGV[2] time taken, ARGV[3] the message as kombu stores it. Returns 1.
APPEND_ALLOW_OOM = """#!lua flags=allow-oom
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""


class Worker(CeleryWorker):
    """Celery's worker with :data:`QUIET_WORKER` forced, whatever the command line says."""

    def prepare_args(self, **kwargs):
        return {**super().prepare_args(**kwargs), **QUIET_WORKER}


class App(Celery):
    """The Celery app class whose workers are :class:`Worker` (``celery -A workers worker`` too)."""

    @cached_property
    def Worker(self):  # noqa: N802 (Celery's name)
        return self.subclass_with_self("workers.broker:Worker")


class _FullRedis:
    """Per channel: when Redis last refused a write for memory, and warning at most once a minute."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.warned_at: float | None = None

    def note(self, what: str) -> None:
        now = self.clock()
        if self.warned_at is None or now - self.warned_at >= WARN_EVERY_SECONDS:
            self.warned_at = now
            log.warning("broker: Redis is full (maxmemory): %s", what)


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS, with a full Redis as a pause instead of an error."""

    def append(self, message, delivery_tag):
        try:
            super().append(message, delivery_tag)
        except OutOfMemoryError:
            self._append_allow_oom(message, delivery_tag)

    def _append_allow_oom(self, message, delivery_tag):
        ch = self.channel
        delivery = message.delivery_info
        payload = kombu_redis.dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        try:
            with ch.conn_or_acquire() as client:
                client.register_script(APPEND_ALLOW_OOM)(
                    keys=[self.unacked_index_key, ch.global_keyprefix + self.unacked_key],
                    args=[delivery_tag, time.time(), payload], client=client)
        except ResponseError:  # Redis < 7 (no script flags): the task is recorded in memory only
            ch.full.note("a task taken could not be recorded as unacknowledged; it runs, but a crash "
                         "before it finishes loses it")
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except OutOfMemoryError:  # MULTI is refused when full; ZREM and HDEL alone are not
            self._forget(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except OutOfMemoryError:  # a requeued task stays recorded: back after the visibility timeout
            if not requeue:
                self._forget(delivery_tag)
            virtual.QoS.ack(self, delivery_tag)

    def _forget(self, delivery_tag):
        with self.channel.conn_or_acquire() as client:
            client.pipeline(transaction=False).zrem(self.unacked_index_key, delivery_tag) \
                .hdel(self.unacked_key, delivery_tag).execute()

    def restore_visible(self, *args, **kwargs):
        try:
            return super().restore_visible(*args, **kwargs)
        except OutOfMemoryError:
            self.channel.full.note("unacknowledged tasks are put back once it has room")
            return None

    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except OutOfMemoryError:
            self._delivered.clear()
            self.channel.full.note("tasks in flight at shutdown come back after the visibility timeout")
            return None


class _OOMChannelMixin:
    """Bindings refused for memory are remembered and written again with backoff."""

    QoS = QoS

    def __init__(self, *args, **kwargs):
        self.full = _FullRedis()
        self._pending_binds: dict[tuple, None] = {}
        self._rebind_attempt = 0
        self._rebind_at = 0.0
        super().__init__(*args, **kwargs)

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        try:
            super()._queue_bind(exchange, routing_key, pattern, queue)
        except OutOfMemoryError:
            self._pending_binds[(exchange, routing_key, pattern, queue)] = None
            self.full.note(f"the binding of queue {queue!r} is written once it has room; consuming goes on")
            self._rebind_at = time.monotonic() + REBIND_BASE_SECONDS

    # Reads and deletes kombu sends in MULTI: refused when full (queued commands are), so sent plainly.
    def _size(self, queue):
        try:
            return super()._size(queue)
        except OutOfMemoryError:
            return sum(self._each_priority("llen", queue))

    def _has_queue(self, queue, **kwargs):
        try:
            return super()._has_queue(queue, **kwargs)
        except OutOfMemoryError:
            return any(self._each_priority("exists", queue))

    def _delete(self, queue, *args, **kwargs):
        try:
            return super()._delete(queue, *args, **kwargs)
        except OutOfMemoryError:  # the SREMs went through; the queue's lists are deleted plainly
            self._each_priority("delete", queue)
            return None

    def _each_priority(self, command: str, queue) -> list:
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            for pri in self.priority_steps:
                getattr(pipe, command)(self._q_for_pri(queue, pri))
            return [v for v in pipe.execute() if isinstance(v, int)]

    def retry_pending_binds(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if not self._pending_binds or now < self._rebind_at:
            return
        for bind in list(self._pending_binds):
            try:
                super()._queue_bind(*bind)
            except OutOfMemoryError:
                self._rebind_attempt += 1
                self._rebind_at = now + backoff_cap(self._rebind_attempt, base=REBIND_BASE_SECONDS,
                                                    max_backoff=REBIND_MAX_SECONDS)
                return
            del self._pending_binds[bind]
        self._rebind_attempt = 0
        log.info("broker: Redis has room again; queue bindings written")

    def maybe_refresh_binding_expiry(self):  # kombu calls this every second on each channel
        try:
            self.retry_pending_binds()
        except self.connection_errors:
            log.debug("broker: rebinding failed (connection); will retry", exc_info=True)
        try:
            return super().maybe_refresh_binding_expiry()
        except OutOfMemoryError:  # kombu's script refused: the expiring bindings are refreshed later
            self.full.note("expiring queue bindings are refreshed once it has room")
            return None


class Channel(_OOMChannelMixin, kombu_redis.Channel):
    pass


class Transport(kombu_redis.Transport):
    Channel = Channel


class SentinelChannel(_OOMChannelMixin, kombu_redis.SentinelChannel):
    pass


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = SentinelChannel
