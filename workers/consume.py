"""Read webhook bodies from the stream and turn their events into state changes.

Each :meth:`Consumer.step` reads up to ``LINESYNC_CONSUME_BATCH`` bodies with
XREADGROUP and applies all their events in one atomic script that also XACKs
them (shared/state.py): a body's effects and its acknowledgement commit
together, so a worker killed at any instant either did all of it or none, and
running it again changes nothing (dedupe by webhookEventId, newer-wins by
version). A bad body is dead-lettered alone, never with the batch it was read
in (:meth:`Consumer.process`).

Reading, recovery and dead letters are workers/stream_consumer.py's: bodies
left unacknowledged by a consumer whose worker process is gone are taken over
at once; those idle for ``LINESYNC_CONSUME_CLAIM_IDLE_MS`` in a live but stuck
consumer, with XAUTOCLAIM. One delivered more than
``LINESYNC_CONSUME_MAX_DELIVERIES`` times goes to the dead-letter stream.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from shared import dlq, forward, rates, state, webhook_queue
from shared.clock import Clock, now_ms
from shared.config import Settings
from shared.errors import InvalidWebhook
from shared.events import Event, parse_body
from shared.keys import STREAM_GROUP, Keys
from shared.redis_conn import REDIS_DOWN
from workers.stream_consumer import StreamConsumer

log = logging.getLogger(__name__)

# The envelope's "destination" (the bot user id the body was sent to), found without parsing again.
_DESTINATION = re.compile(rb'"destination"\s*:\s*"([^"\\]{1,64})"')
# The webhook rate (shared/rates.py, for the status page) is written at most this often (ms),
# not once per step: under load a step often holds a single body, and its round trips are
# what the consume loop waits on.
RATE_WRITE_MS = 1000

# Longest event-type name kept as its own counter; others are "other".
MAX_TYPE_LEN = 40

# A hook that sees every parsed event before the batch is acknowledged (account
# linking uses it). It must be idempotent: a crash replays the whole batch.
EventHook = Callable[[Sequence[Event]], None]


@dataclass(frozen=True)
class _Body:
    """One stored body, parsed: what applying it takes."""

    entry_id: str
    raw: bytes
    events: list[Event]
    changes: list[state.Change]
    counters: Counter[str]


class Consumer:
    def __init__(self, r: redis.Redis, keys: Keys, settings: Settings, clock: Clock, name: str,
                 hooks: Sequence[EventHook] = (), is_alive: Callable[[str], bool] = lambda worker: True,
                 on_applied: Callable[[int], None] = lambda changes: None, record_destination: bool = False):
        """``record_destination``: keep the newest body's ``destination`` in ``{P}:destination``
        (with several channels, for `linesync doctor`; written only when it changes)."""
        self.r, self.keys, self.settings, self.clock, self.name = r, keys, settings, clock, name
        self.on_applied = on_applied  # told how many state changes each batch applied (wakes the senders)
        self.record_destination = record_destination
        self._destination: bytes | None = None
        self.hooks = list(hooks)
        self.is_alive = is_alive
        self.forward_types = set(settings.forward_event_types)
        self.stream = StreamConsumer(r, keys, keys.webhooks, name, clock=clock, is_alive=is_alive,
                                     claim_idle_ms=settings.consume_claim_idle_ms,
                                     max_deliveries=settings.consume_max_deliveries, letter=_letter,
                                     claim_chunk=settings.consume_batch_bodies)
        self.last_handled = 0
        self._uncounted = 0   # bodies applied since the rate was last written
        self._counted_ms = 0  # when it was

    def step(self, block_ms: int = 1000) -> float:
        """Process one batch of new bodies (and, now and then, abandoned ones).

        Returns how long the pump should sleep: always 0, since the read itself
        blocks up to ``block_ms`` when there is nothing to do. ``last_handled``
        says how many bodies this step took.
        """
        handled = self.recover() if self.stream.recover_due() else 0
        entries = self.stream.read_new(self.settings.consume_batch_bodies, block_ms)
        self.process(entries)
        self.last_handled = handled + len(entries)
        if not entries and self._uncounted:
            self.write_rate(now_ms(self.clock))  # nothing new: the count waits no longer
        return 0.0

    def write_rate(self, now: int) -> None:
        """Add the bodies applied since the last write to the webhook rate (best effort, one round trip)."""
        if self._uncounted:
            rates.add(self.r, self.keys, rates.WEBHOOKS, self._uncounted, now / 1000)
        self._uncounted, self._counted_ms = 0, now

    def recover(self) -> int:
        """Take over the entries of dead workers' consumers, and entries idle too long anywhere, and apply them."""
        return self.stream.recover(self.process)

    def process(self, entries: list) -> None:
        """Apply a batch of stream entries and acknowledge them, setting aside only bad bodies.

        1. Each body is parsed and turned into changes on its own (pure work): a
           body that fails here (not the envelope, out of bounds, any error) is
           dead-lettered alone.
        2. The rest are applied together: the hooks, then one atomic script that
           also acknowledges them.
        3. If that fails while Redis is reachable, they are applied again one at
           a time, so one bad body cannot take up to LINESYNC_CONSUME_BATCH good
           ones with it. A body that fails alone is dead-lettered at once when
           the error is not Redis's (the same data fails the same way again);
           when Redis refused it, it stays pending and is redelivered, then
           dead-lettered after LINESYNC_CONSUME_MAX_DELIVERIES.
        When Redis is away (connection, timeout, loading) nothing is set aside:
        the error propagates and every entry stays pending.
        """
        if not entries:
            return
        now = now_ms(self.clock)
        bodies = [b for b in (self._prepare(raw_id, fields, now) for raw_id, fields in entries) if b is not None]
        if not bodies:
            return
        try:
            self._commit(bodies, now)
            return
        except REDIS_DOWN:
            raise
        except Exception as e:
            if len(bodies) == 1:
                self._set_aside([(bodies[0], e)])
                return
            log.warning("a batch of %d bodies failed (%s): applying them one at a time",
                        len(bodies), type(e).__name__)
        failed: list[tuple[_Body, Exception]] = []
        for b in bodies:
            try:
                self._commit([b], now)
            except REDIS_DOWN:
                raise
            except Exception as e:
                failed.append((b, e))
        self._set_aside(failed)

    def _prepare(self, raw_id, fields: dict, now: int) -> _Body | None:
        """One body parsed into its events, changes and counters; None if it was dead-lettered."""
        eid = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
        raw = fields.get(webhook_queue.BODY_FIELD, b"")
        counters: Counter[str] = Counter(bodies=1)
        changes: list[state.Change] = []
        try:
            events = parse_body(raw, eid)
            for ev in events:
                counters["events:" + (ev.type if len(ev.type) <= MAX_TYPE_LEN else "other")] += 1
                change = self._change(ev, now)
                if change is not None:
                    changes.append(change)
                elif ev.user_id is None:
                    counters["events_without_user"] += 1
        except InvalidWebhook as e:
            self._dead_letter(eid, raw, str(e))
            return None
        except Exception as e:  # pure work on this body alone: the body is at fault
            self._dead_letter(eid, raw, f"could not be read ({type(e).__name__})", detail=str(e))
            return None
        return _Body(eid, raw, events, changes, counters)

    def _commit(self, bodies: Sequence[_Body], now: int) -> None:
        """Hooks, then the state script that applies the bodies' changes and acknowledges them: all or nothing."""
        events = [ev for b in bodies for ev in b.events]
        for hook in self.hooks:
            hook(events)
        counters: Counter[str] = Counter()
        for b in bodies:
            counters.update(b.counters)
        res = state.apply(self.r, self.keys, [c for b in bodies for c in b.changes], now_ms=now,
                          dedupe_ttl=self.settings.dedupe_ttl_seconds, ack_ids=[b.entry_id for b in bodies],
                          group=STREAM_GROUP, counters=counters)
        self._uncounted += len(bodies)
        if now - self._counted_ms >= RATE_WRITE_MS:
            self.write_rate(now)
        if self.record_destination:
            self._note_destination(bodies[-1].raw)
        log.debug("consumed %d bodies, %d events: %s", len(bodies), len(events), res)
        if res is not None and res.applied:
            self.on_applied(res.applied)

    def _note_destination(self, raw: bytes) -> None:
        m = _DESTINATION.search(raw)
        if m and m.group(1) != self._destination:
            self.r.set(self.keys.destination, m.group(1))
            self._destination = m.group(1)

    def _set_aside(self, failed: Sequence[tuple[_Body, Exception]]) -> None:
        """Bodies that failed alone: dead-lettered, unless Redis refused them (OOM, READONLY...),
        which is not their fault: those stay pending, logged in one line."""
        refused = []
        for body, error in failed:
            if isinstance(error, redis.RedisError):
                refused.append((body, error))
            else:
                self._dead_letter(body.entry_id, body.raw, f"could not be applied ({type(error).__name__})",
                                  detail=str(error))
        if refused:
            log.warning("%d webhook bodies (%s) not applied, left for redelivery: %s", len(refused),
                        ", ".join(b.entry_id for b, _ in refused[:3]) + (", ..." if len(refused) > 3 else ""),
                        str(refused[0][1])[:120])

    def _change(self, ev: Event, now: int) -> state.Change | None:
        fwd = ""
        if ev.type in self.forward_types:
            obj = forward.custom_event(ev)
            if obj is not None:
                fwd = forward.encode(obj, now)
        if ev.state is None and not fwd:
            return None
        return state.Change(user=ev.user_id or "", version=ev.version, state=ev.state or "",
                            event_id=ev.event_id, forward=fwd)

    def _dead_letter(self, entry_id, body: bytes, reason: str, *, detail: str = "") -> None:
        """Move one body to the dead-letter stream. The log line names the entry, its size and
        ``reason``, never content (personal data); ``detail`` (an error's message) is kept in the letter only."""
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        log.error("webhook body %s (%d bytes) dead-lettered: %s", eid, len(body), reason)
        letter_reason = f"{reason}: {detail[:200]}" if detail else reason
        self.stream.dead_letter([(eid, {webhook_queue.BODY_FIELD: body})], letter_reason)


def _letter(entry_id, fields: dict) -> tuple[str, dict]:
    """A webhook body's dead letter: its stream id and text."""
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return dlq.webhook_letter(eid, fields.get(webhook_queue.BODY_FIELD, b""))
