"""Deliver outbox batches to Braze /users/track.

One call to :meth:`Deliverer.step` asks the shared gate whether Braze may be
called (workers/sending.py), claims one batch (shared/outbox.py), sends it
under the limiter and settles it by the rules written once in workers/settle.py
(this module's ``_TrackWork`` is the batch's adapter: its attempts live in the
batch, its parts are halves of its items and events):

1. 2xx: done; items Braze names in ``errors`` are dead-lettered with its reason.
2. 400 for the whole request: the batch is split in halves until the bad
   items are alone; those are dead-lettered, the rest delivered.
3. 5xx, timeout, connection error: the batch waits its own growing, jittered
   backoff (``BRAZE_RETRY_BASE_SECONDS`` doubling to ``BRAZE_RETRY_MAX_SECONDS``)
   with one more attempt counted, and is dead-lettered after
   ``BRAZE_RETRY_MAX_ATTEMPTS``; meanwhile the shared breaker holds every worker
   back and one probe goes at least every ``BRAZE_PROBE_MAX_SECONDS`` (a batch
   sent early as a probe counts no attempt when it fails). When a probe
   succeeds, every batch waiting to retry is due at once.
4. 429, 401/403/404, or a limiter wait too long to hold the batch: the batch
   waits until every worker may send again (no attempt counted; nothing dropped).

A batch's users stay "in flight" until it is settled, so a newer state of the
same user can never be sent before an older one. Each claim leases the batch to
this Deliverer's ``owner`` (a unique token per claim) for :func:`lease_ms`: only
that claim may settle the batch (finish, retry, dead-letter; shared/outbox.py).
A sender held up (a stalled Redis call, the limiter's wait, a paused process)
checks its lease right before each request: with less than :func:`margin_ms`
left it renews it, and if another worker has taken the batch over meanwhile it
drops it without sending; the new owner sends it. A slow sender therefore never
sends an older state after the newer one that followed the takeover.

Many Deliverers (one per worker process, shared by its sender threads, any number
of processes) run at once: everything they share lives in Redis.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import redis

from shared import dlq, outbox, payload
from shared.clock import Clock, now_ms
from shared.config import Settings
from shared.keys import Keys
from shared.batch import Batch, Item
from shared.outbox import Wait
from workers import braze as b
from workers import metrics
from workers import sending, settle
from workers.sending import Sender
from workers.wakeup import Wakeup

log = logging.getLogger(__name__)

# When the outbox is empty, look again after this long (s).
IDLE_SLEEP = 0.05
# While a partial batch waits for the flush delay, look again at least this often (s):
# under load the outbox fills a whole batch long before the delay is up.
POLL_SLEEP = 0.05
# While every worker must wait (pause, breaker), look again at least this often (s).
GATE_POLL = 1.0
# A batch's lease is never shorter than this (ms).
MIN_LEASE_MS = 20_000
# Batches one step sends back to back, each finished and the next claimed in one round trip.
CHAIN = 8
# A sender waiting while another watches an empty outbox looks itself after this long (s).
IDLE_WAIT = 1.0
# The watcher is replaced if it has not looked again this long after its pause (s).
WATCH_GRACE = 0.5
# This many items of one batch rejected alone (400) with none delivered: a configuration
# error (a wrong subscription group rejects every item), not bad data.
CONFIG_SUSPECT_LEAVES = 3


@dataclass
class _Part:
    items: list[Item]
    events: list[dict]
    attributes: list[dict] = field(default_factory=list)  # the items' objects, once built to send
    owners: list[str] = field(default_factory=list)       # each object's LINE user

    def size(self) -> int:
        return len(self.items) + len(self.events)

    def halves(self) -> tuple[_Part, _Part]:
        units = [("i", x) for x in self.items] + [("e", x) for x in self.events]
        mid = len(units) // 2
        def part(us):
            return _Part([x for k, x in us if k == "i"], [x for k, x in us if k == "e"])
        return part(units[:mid]), part(units[mid:])


def lease_ms(settings: Settings) -> int:
    """How long a sender holds a batch before another may take it over (ms).

    A sender renews it before each request (bisecting sends several), so it only
    has to outlast one request: the longest limiter wait plus Braze's connect and
    read timeouts, twice over. With the default 10 s timeout that is 30 s, the
    delay a killed worker's batches see before another worker sends them again.
    """
    one_request = sending.MAX_TOKEN_WAIT_MS / 1000 + b.CONNECT_TIMEOUT + settings.braze_timeout_seconds
    return max(MIN_LEASE_MS, int(2 * one_request * 1000))


def margin_ms(settings: Settings) -> int:
    """A request goes only with at least this much of its batch's lease left (ms): Braze's
    connect and read timeouts, so the request is over before another worker may take the batch
    over. 13 s with the default 10 s timeout, well inside :func:`lease_ms`: a fresh claim has room
    for its limiter wait and request without renewing."""
    return int((b.CONNECT_TIMEOUT + settings.braze_timeout_seconds) * 1000)


class Deliverer:
    def __init__(self, r: redis.Redis, keys: Keys, settings: Settings, client: b.BrazeClient,
                 sender: Sender, clock: Clock, *, owner: str = outbox.DEFAULT_OWNER):
        self.r, self.keys, self.settings = r, keys, settings
        self.client, self.sender, self.clock = client, sender, clock
        self.owner = owner  # whose claims these are (the worker's name); each claim adds a unique part
        self.group = settings.braze_subscription_group_id or ""
        self.policy = settle.Policy.of(settings)
        self.lease_ms = lease_ms(settings)
        self.margin_ms = margin_ms(settings)
        self.idle_sleep = IDLE_SLEEP  # how long the watcher waits before looking at an empty outbox again
        self._tally = [0, 0]  # batches finished, objects delivered (by this Deliverer, all threads)
        self._tally_lock = threading.Lock()
        # While the outbox has nothing to send, one thread watches it and the others wait.
        self._idle = threading.Condition()
        self._watcher: int | None = None
        self._watch_until = 0.0
        self.wakeup = Wakeup(settings.braze_track_batch_size)  # the consumers' Consumer(on_applied=)

    def counts(self) -> tuple[int, int]:
        """(batches finished, objects delivered) so far, for the worker's INFO summary."""
        with self._tally_lock:
            return self._tally[0], self._tally[1]

    # -- one unit of work -------------------------------------------------
    def step(self) -> float:
        """Claim and settle a batch, and up to ``CHAIN - 1`` more back to back while there is work.

        Returns how long to sleep before the next step (s).
        """
        gate = self.sender.gate()
        if gate.wait_ms:
            return min(gate.wait_ms / 1000, GATE_POLL)
        got = outbox.claim(
            self.r, self.keys, now_ms=now_ms(self.clock), max_objects=self.settings.braze_track_batch_size,
            flush_delay_ms=self.settings.flush_delay_ms, probe=gate.probe, lease_ms=self.lease_ms,
            owner=self.owner,
        )
        self.wakeup.claimed(got)
        if isinstance(got, Wait):
            return self._nothing_to_send(got)
        with self._idle:
            if self._watcher == threading.get_ident():
                self._watcher = None
            self._idle.notify(2)  # there may be more: wake two waiting siblings (each wakes two more)
        batch: Batch | None = got
        for left in range(CHAIN - 1, -1, -1):
            pause, batch = self._deliver(batch, claim_next=left > 0)
            if batch is None:
                return pause
        return 0.0

    def deliver(self, batch: Batch) -> float:
        """Send and settle one batch. Returns how long to sleep before the next step (s)."""
        return self._deliver(batch, claim_next=False)[0]

    def _nothing_to_send(self, wait: Wait) -> float:
        """One thread per process keeps looking at the outbox; the others wait to be woken.

        64 idle senders each claiming every 50 ms would cost Redis ~1,300 scripts a
        second for nothing; this way it is ~20, and a found batch wakes the rest. The
        watcher's pause is cut short by the process's consumers (:meth:`rest`).
        """
        pause = min(wait.ms / 1000, POLL_SLEEP) if wait.why == "delay" else self.idle_sleep
        me = threading.get_ident()
        with self._idle:
            if self._watcher not in (None, me) and time.monotonic() < self._watch_until:
                self._idle.wait(IDLE_WAIT)
                return 0.0
            self._watcher, self._watch_until = me, time.monotonic() + pause + WATCH_GRACE
        return pause

    def rest(self, seconds: float, stop: threading.Event) -> None:
        """Sleep between steps: the watcher until a batch's worth arrived (workers/wakeup.py), the others on ``stop``."""
        if self._watcher == threading.get_ident():
            self.wakeup.rest(seconds, stop)
        else:
            stop.wait(seconds)

    def _deliver(self, batch: Batch, *, claim_next: bool) -> tuple[float, Batch | None]:
        """Send and settle one batch (workers/settle.py); with ``claim_next`` (and an open gate),
        finish it and claim the next in one round trip. Returns (pause, the next batch or None)."""
        return settle.deliver(_TrackWork(self, batch, claim_next=claim_next), self.sender, self.clock, self.policy)

    def _finish(self, batch: Batch, delivered: int, dead: list, *, claim_next: bool) -> tuple[bool, Batch | None]:
        """Finish the batch (and claim the next, with ``claim_next`` and an open gate).
        Returns (finished here: False if another worker took it over; the next batch or None)."""
        now = now_ms(self.clock)
        gate = self.sender.gate() if claim_next else None
        if gate is None or gate.wait_ms or gate.probe:
            return outbox.finish(self.r, self.keys, batch, delivered=delivered, dead=dead, now_ms=now), None
        finished, got = outbox.finish_and_claim(
            self.r, self.keys, batch, delivered=delivered, dead=dead, now_ms=now,
            max_objects=self.settings.braze_track_batch_size, flush_delay_ms=self.settings.flush_delay_ms,
            lease_ms=self.lease_ms, owner=self.owner)
        self.wakeup.claimed(got)
        return finished, got if isinstance(got, Batch) else None

    # -- the lease ----------------------------------------------------------
    def _hold(self, batch: Batch) -> bool:
        """Right before a request: is the batch still ours, with room for the whole request?

        With at least ``margin_ms`` of lease left, yes (no Redis call: a fresh claim always
        has). Otherwise the lease is renewed for ``lease_ms``, atomically, only if no other
        worker has taken the batch over meanwhile.
        """
        now = now_ms(self.clock)
        if batch.lease_until - now >= self.margin_ms:
            return True
        return outbox.renew(self.r, self.keys, batch, until_ms=now + self.lease_ms)

    def _lost(self, batch: Batch, doing: str) -> None:
        log.warning("batch %s: its lease lapsed (this sender was held up) and another worker took it over; "
                    "left to that worker instead of %s", batch.id, doing)

    # -- helpers ----------------------------------------------------------
    def _attributes(self, items: list[Item]) -> tuple[list[dict], list[str]]:
        objs, owners = [], []
        for it in items:
            for o in payload.objects_for(it.user, it.state, it.external_ids, self.group, version=it.version,
                                         mode=self.settings.braze_state_mode):
                objs.append(o)
                owners.append(it.user)
        return objs, owners

    def _letters(self, part: _Part, reason: str) -> list[tuple[str, str, dict]]:
        out = []
        for it in part.items:
            kind, payload = dlq.track_letter(it.user, self._attributes([it])[0])
            out.append((kind, reason, payload))
        for ev in part.events:
            kind, payload = dlq.track_event_letter(ev)
            out.append((kind, reason, payload))
        return out

    def _configuration_error(self, batch: Batch, reason: str) -> float:
        """Every item rejected: pause every worker loudly, drop nothing, bisect fully next time."""
        now = now_ms(self.clock)
        until = now + int(self.settings.braze_auth_retry_seconds * 1000)
        log.critical("Braze rejects every item of batch %s with 400 (%s): this looks like configuration, "
                     "not data; check BRAZE_SUBSCRIPTION_GROUP_ID and the API key's permissions. Delivery "
                     "paused for every worker for %.0f s; nothing is dropped.", batch.id, reason,
                     (until - now) / 1000)
        self.sender.pause(until, f"every item rejected: {reason}", "config", now_ms=now)
        batch.config_checked = True
        if not outbox.reschedule(self.r, self.keys, batch, due_ms=until, save=True):
            self._lost(batch, "putting it back")
        return IDLE_SLEEP


class _TrackWork:
    """A batch as workers/settle.py's unit of work: its parts are halves of its items and events,
    its attempts live in the batch, and it is sent only while its lease is this sender's.
    Each settling method returns (pause, the next batch or None)."""

    def __init__(self, d: Deliverer, batch: Batch, *, claim_next: bool):
        self.d, self.batch, self.claim_next = d, batch, claim_next
        self.keep = lambda: d._hold(batch)
        self.delivered = 0  # objects Braze took
        self.dead: list[tuple[str, str, dict]] = []  # (kind, reason, payload)
        self.rejected_alone = 0

    # -- sending ------------------------------------------------------------
    def root(self) -> _Part:
        return _Part(self.batch.items, self.batch.events)

    def size(self, part: _Part) -> int:
        return part.size()

    def halves(self, part: _Part) -> tuple[_Part, _Part]:
        return part.halves()

    def request(self, part: _Part):
        part.attributes, part.owners = self.d._attributes(part.items)
        if not part.attributes and not part.events:
            return None
        client, clock = self.d.client, self.d.clock
        return lambda: client.track(part.attributes, part.events, now=clock.now())

    def done(self, part: _Part, errors) -> None:
        named = {(arr, i): reason for arr, i, reason in errors}
        if named:
            for i, obj in enumerate(part.attributes):
                if ("attributes", i) in named:
                    kind, payload = dlq.track_letter(part.owners[i], [obj])
                    self.dead.append((kind, named["attributes", i], payload))
            for i, ev in enumerate(part.events):
                if ("events", i) in named:
                    kind, payload = dlq.track_event_letter(ev)
                    self.dead.append((kind, named["events", i], payload))
        self.delivered += len(part.attributes) + len(part.events) - len(named)

    def reject(self, part: _Part, reason: str) -> bool:
        """An item refused alone; three of them with nothing delivered (in a batch not yet
        bisected fully) look like configuration, not data: stop."""
        self.dead.extend(self.d._letters(part, reason))
        self.rejected_alone += 1
        return (self.rejected_alone >= CONFIG_SUSPECT_LEAVES and not self.delivered
                and not self.batch.config_checked)

    # -- settling -----------------------------------------------------------
    def finish(self) -> tuple[float, Batch | None]:
        d, batch, delivered, dead = self.d, self.batch, self.delivered, self.dead
        size = len(batch.items) + len(batch.events)
        if not delivered and size >= CONFIG_SUSPECT_LEAVES and len(dead) == size:
            return d._configuration_error(batch, dead[-1][1]), None  # every item rejected
        finished, nxt = d._finish(batch, delivered, dead, claim_next=self.claim_next)
        metrics.delivered(delivered)  # Braze took them, whoever settles the batch
        if not finished:
            d._lost(batch, "finishing it")
            return 0.0, nxt
        metrics.dead_lettered(kind for kind, _, _ in dead)
        with d._tally_lock:
            d._tally[0] += 1
            d._tally[1] += delivered
        if delivered or dead:
            log.debug("batch %s: %d objects delivered, %d dead-lettered", batch.id, delivered, len(dead))
        return 0.0, nxt

    def stopped_by_reject(self, reason: str) -> tuple[float, None]:
        return self.d._configuration_error(self.batch, reason), None  # too many refused alone, none delivered

    def attempts(self, rest: list) -> list[tuple[Batch, int, int]]:
        return [(self.batch, self.batch.attempts, self.batch.retry_at)]  # the whole batch goes again

    def failed(self, reason: str, steps: list) -> tuple[float, None]:
        (batch, step), = steps
        d, now = self.d, now_ms(self.d.clock)
        if isinstance(step, settle.GiveUp):
            batch.attempts, batch.last_error = step.attempts, reason
            log.error("batch %s dead-lettered after %d attempts: %s", batch.id, batch.attempts, reason)
            letters = d._letters(_Part(batch.items, batch.events), step.reason)
            if outbox.finish(d.r, d.keys, batch, delivered=0, dead=letters, now_ms=now):
                metrics.dead_lettered(kind for kind, _, _ in letters)
            else:
                d._lost(batch, "dead-lettering it")
            return 0.0, None
        if not step.counted:
            # Sent early as the probe of a failing Braze: the outage failed, not this batch.
            # It keeps its attempt count and goes back to wait for its own time.
            if not outbox.reschedule(d.r, d.keys, batch, due_ms=step.at_ms, retry=True):
                d._lost(batch, "putting it back")
            return IDLE_SLEEP, None
        batch.attempts, batch.last_error, batch.retry_at = step.attempts, reason, step.at_ms
        log.info("batch %s attempt %d failed (%s); retry in %.1f s", batch.id, batch.attempts, reason,
                 (step.at_ms - now) / 1000)
        if not outbox.reschedule(d.r, d.keys, batch, due_ms=batch.retry_at, save=True, retry=True):
            d._lost(batch, "scheduling its retry")
        return IDLE_SLEEP, None

    def wait(self, until_ms: int) -> tuple[float, None]:
        """429, auth failure, or held by the limiter: with every worker, no attempt counted."""
        if not outbox.reschedule(self.d.r, self.d.keys, self.batch, due_ms=until_ms):
            self.d._lost(self.batch, "putting it back")
        return IDLE_SLEEP, None

    def lost(self) -> tuple[float, None]:
        self.d._lost(self.batch, "before sending")
        return 0.0, None
