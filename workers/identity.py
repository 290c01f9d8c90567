"""Send queued /users/identify and /users/merge items to Braze.

Each step takes up to 50 items from the identity stream (first this
consumer's own unsettled ones whose retry time has come: earlier failures and
waiting items, renewed so that no other worker takes them over while this one
waits; then new ones), keeps those whose LINE user has no state still on its
way to Braze (an identify must not overtake the call that creates the
anonymous profile), groups them by kind, and sends each group by the rules
written once in workers/settle.py, the same as /users/track's:

1. 2xx: items Braze names in ``errors`` are dead-lettered with its reason; the
   rest are done, and the link index records external_id ↔ LINE user (which
   also sends the linked profile its current state).
2. 400 for the whole request: the group is split in halves until the bad items
   are alone; those are dead-lettered, the rest delivered.
3. 5xx / timeout: the shared breaker opens; each unsent item counts one more
   attempt and waits its own growing, jittered backoff
   (``BRAZE_RETRY_BASE_SECONDS`` doubling to ``BRAZE_RETRY_MAX_SECONDS``), and
   is dead-lettered after ``BRAZE_RETRY_MAX_ATTEMPTS``. While the breaker is
   half-open a waiting item may go early as the probe (a failed probe counts no
   attempt); when Braze answers again every waiting item is due at once.
4. 429 / 401 / 403 / 404: every worker pauses (as for /users/track); the items
   stay unacknowledged, no attempt counted, and are sent again.

This module's ``_IdentityWork`` is a group's adapter for workers/settle.py:
its attempts live per item (shared/identity.py's retry state, forgotten in the
transaction that settles the item). Sending under the limiter and what an
answer means for every worker is workers/sending.py, shared with /users/track.
Each worker process runs one identity loop with its own stream consumer,
``<worker>/identity`` (workers/stream_consumer.py): a dead worker's items are
taken over by the others, items idle ``LINESYNC_CONSUME_CLAIM_IDLE_MS`` in a
stuck loop too, and an item taken over more than
``LINESYNC_CONSUME_MAX_DELIVERIES`` times is dead-lettered.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import redis

from shared import dlq, identity, links, outbox
from shared.clock import Clock, now_ms
from shared.config import Settings
from shared.identity import Request, RetryState
from shared.keys import Keys
from workers import braze as b
from workers import settle
from workers.sending import Sender
from workers.stream_consumer import StreamConsumer

log = logging.getLogger(__name__)

IDLE_SLEEP = 0.05
# While every queued item waits (for its user's profile to reach Braze, or its retry time), look again this often (s).
DEFER_SLEEP = 0.2
# While every worker must wait (pause, breaker), look again at least this often (s).
GATE_POLL = 1.0
# Own unsettled items looked at per step (those waiting for their retry time are skipped).
OWN_SCAN = 500


@dataclass(frozen=True)
class _Entry:
    id: object       # stream id, as redis-py returns it
    fields: dict     # the stream entry's fields (for its dead letter)
    req: Request


class IdentityDeliverer:
    def __init__(self, r: redis.Redis, keys: Keys, settings: Settings, client: b.BrazeClient,
                 sender: Sender, clock: Clock, *, consumer: str,
                 is_alive: Callable[[str], bool] = lambda worker: True):
        """``consumer``: this loop's name in the stream group, ``<worker>/identity``."""
        self.r, self.keys, self.settings = r, keys, settings
        self.client, self.sender, self.clock = client, sender, clock
        self.policy = settle.Policy.of(settings)
        self.stream = StreamConsumer(r, keys, keys.identity, consumer, clock=clock, is_alive=is_alive,
                                     claim_idle_ms=settings.consume_claim_idle_ms,
                                     max_deliveries=settings.consume_max_deliveries, letter=_letter,
                                     on_settle=lambda p, ids: identity.forget(p, keys, ids))

    def step(self, block_ms: int = 1000) -> float:
        if self.stream.recover_due():
            self.stream.recover()  # claimed items are ours now: read below with our own
        # Ours from earlier steps (failed, or waiting for their user), renewed even while we wait.
        own = self.stream.own(OWN_SCAN)
        gate = self.sender.gate()
        if gate.wait_ms:
            return min(gate.wait_ms / 1000, GATE_POLL)
        now = now_ms(self.clock)
        states = identity.retry_states(self.r, self.keys, [eid for eid, _ in own])
        entries = [e for e in own if states[e[0]].retry_at <= now][:identity.MAX_ITEMS]
        if len(entries) < identity.MAX_ITEMS:
            entries += self.stream.read_new(identity.MAX_ITEMS - len(entries), 0 if own else block_ms)
        if gate.probe and not entries:  # a failing Braze and nothing else to try: a waiting item probes early
            entries = sorted(own, key=lambda e: states[e[0]].retry_at)[:identity.MAX_ITEMS]
        ready = self._ready([_Entry(eid, f, identity.request(f)) for eid, f in entries])
        if not ready:
            return DEFER_SLEEP if own else 0.0
        groups: dict[str, list[_Entry]] = defaultdict(list)
        for e in ready:
            groups[e.req.kind].append(e)
        for kind, group in groups.items():
            if kind not in identity.KINDS:
                self._dead(group, f"unknown kind {kind!r}")
                continue
            pause = self._send(kind, group, states)
            if pause:
                return pause
        return 0.0

    def _ready(self, entries: list[_Entry]) -> list[_Entry]:
        """Entries whose LINE user has no state waiting to reach Braze.

        Braze ignores an identify or merge naming an alias it has not seen yet, so
        one must not overtake the /users/track call that creates the user's
        anonymous profile: it waits until the user is neither dirty nor in flight.
        """
        if not entries:
            return []
        waiting = outbox.pending(self.r, self.keys, [e.req.line_user_id for e in entries])
        return [e for e, w in zip(entries, waiting) if not w]

    def _send(self, kind: str, group: list[_Entry], states: dict) -> float:
        """Send one group and settle it (workers/settle.py); returns how long to sleep (0: go on)."""
        return settle.deliver(_IdentityWork(self, kind, group, states), self.sender, self.clock, self.policy)

    def _done(self, group: list[_Entry]) -> None:
        if not group:
            return
        now = now_ms(self.clock)
        for e in group:
            links.link(self.r, self.keys, e.req.external_id, e.req.line_user_id, now_ms=now)
        self.stream.ack([e.id for e in group])

    def _dead(self, group: list[_Entry], reason: str) -> None:
        if group:
            log.warning("%d identify/merge items dead-lettered: %s", len(group), reason[:200])
            self.stream.dead_letter([(e.id, e.fields) for e in group], reason)


class _IdentityWork:
    """A group of identify or merge items as workers/settle.py's unit of work: its parts are
    halves of the group, each item's attempts are its own (shared/identity.py's retry state),
    and before each request only the items still this loop's (not taken over meanwhile by
    another worker) are sent. Each settling method returns how long to sleep (0: go on)."""

    keep = None

    def __init__(self, d: IdentityDeliverer, kind: str, group: list[_Entry], states: dict):
        self.d, self.kind, self.group, self.states = d, kind, group, states

    # -- sending ------------------------------------------------------------
    def root(self) -> list[_Entry]:
        return list(self.group)

    def size(self, part: list[_Entry]) -> int:
        return len(part)

    def halves(self, part: list[_Entry]) -> tuple[list[_Entry], list[_Entry]]:
        mid = len(part) // 2
        return part[:mid], part[mid:]

    def request(self, part: list[_Entry]):
        ours = self.d.stream.renew()  # a long step (bisecting after a 400): send only what is still ours
        part[:] = [e for e in part if e.id in ours]
        if not part:
            return None
        client, clock, kind = self.d.client, self.d.clock, self.kind
        body = identity.payload(kind, [e.req.item() for e in part])
        return lambda: client.post(identity.path(kind), body, now=clock.now())

    def done(self, part: list[_Entry], errors) -> None:
        bad = {i: reason for _, i, reason in errors}
        by_reason: dict[str, list[_Entry]] = defaultdict(list)
        for i, e in enumerate(part):
            if i in bad:
                by_reason[bad[i]].append(e)
        for reason, group in by_reason.items():
            self.d._dead(group, reason)
        self.d._done([e for i, e in enumerate(part) if i not in bad])

    def reject(self, part: list[_Entry], reason: str) -> bool:
        self.d._dead(part, reason)
        return False

    # -- settling -----------------------------------------------------------
    def finish(self) -> float:
        return 0.0  # each part was settled as it was answered

    def stopped_by_reject(self, reason: str) -> float:
        return 0.0  # never: reject() does not stop

    def attempts(self, rest: list) -> list[tuple[_Entry, int, int]]:
        ours = self.d.stream.renew()  # only items still this loop's count an attempt
        out = []
        for part in rest:
            for e in part:
                if e.id in ours:
                    st = self.states.get(e.id, RetryState())
                    out.append((e, st.attempts, st.retry_at))
        return out

    def failed(self, reason: str, steps: list) -> float:
        """Each item counts an attempt and waits its backoff, or is dead-lettered once they are spent."""
        waits = {e.id: RetryState(step.attempts, step.at_ms) for e, step in steps
                 if isinstance(step, settle.Retry) and step.counted}
        if waits:
            p = self.d.r.pipeline(transaction=True)
            identity.record_retries(p, self.d.keys, waits)
            p.execute()
        spent: dict[str, list[_Entry]] = defaultdict(list)
        for e, step in steps:
            if isinstance(step, settle.GiveUp):
                spent[step.reason].append(e)
        for why, group in spent.items():
            self.d._dead(group, why)
        return IDLE_SLEEP

    def wait(self, until_ms: int) -> float:
        return IDLE_SLEEP  # 429, auth failure, held: the items stay pending, sent again later

    def lost(self) -> float:
        return IDLE_SLEEP  # never: no lease to lose (taken-over items are dropped before each request)


def _letter(entry_id, fields: dict) -> tuple[str, dict]:
    """An identify or merge item's dead letter (shared/dlq.py)."""
    return dlq.identity_letter(identity.request(fields))
