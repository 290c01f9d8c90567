"""Send queued /users/identify and /users/merge items to Braze.

Each step takes up to 50 items from the identity stream (first this
consumer's own unacknowledged ones: earlier failures and waiting items),
keeps those whose LINE user has no state still on its way to Braze (an
identify must not overtake the call that creates the anonymous profile),
groups them by kind, and sends each group under the identify limiter:

1. 2xx: items Braze names in ``errors`` are dead-lettered; the rest are done,
   and the link index records external_id ↔ LINE user (which also sends the
   linked profile its current state).
2. 429 / 401 / 403 / 404: every worker pauses (as for /users/track); the items
   stay unacknowledged and are sent again.
3. 5xx / timeout: the shared breaker opens; each item's attempt count grows and
   it is dead-lettered after ``BRAZE_RETRY_MAX_ATTEMPTS``.
4. 400 for the whole request: each item is sent alone to find the bad ones.

Sending under the limiter and what an answer means for every worker is
workers/sending.py, shared with /users/track. Each worker process runs one
identity loop with its own stream consumer; a dead worker's items are taken
over by the others (workers/streams.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

import redis

from shared import dlq, identity, links, stream_group
from shared.clock import Clock, now_ms
from shared.config import Settings
from shared.keys import STREAM_GROUP, Keys
from workers import braze as b
from workers import metrics, streams
from workers.sending import Sender

log = logging.getLogger(__name__)

CONSUMER = "identity-0"
IDLE_SLEEP = 0.05
# While every queued item waits for its user's profile to reach Braze, look again this often (s).
DEFER_SLEEP = 0.2
# While every worker must wait (pause, breaker), look again at least this often (s).
GATE_POLL = 1.0
# Look for a dead worker's items this often (s).
RECOVER_EVERY = 5.0


class IdentityDeliverer:
    def __init__(self, r: redis.Redis, keys: Keys, settings: Settings, client: b.BrazeClient,
                 sender: Sender, clock: Clock, *, consumer: str = CONSUMER,
                 is_alive: Callable[[str], bool] = lambda worker: True):
        self.r, self.keys, self.settings = r, keys, settings
        self.client, self.sender, self.clock = client, sender, clock
        self.consumer, self.is_alive = consumer, is_alive
        self._group_ready = False
        self._last_recover = float("-inf")

    def step(self, block_ms: int = 1000) -> float:
        if not self._group_ready:
            stream_group.ensure_group(self.r, self.keys.identity)
            self._group_ready = True
        if self.clock.now() - self._last_recover >= RECOVER_EVERY:
            self._last_recover = self.clock.now()
            streams.take_over(self.r, self.keys.identity, me=self.consumer, is_alive=self.is_alive)
        gate = self.sender.gate()
        if gate.wait_ms:
            return min(gate.wait_ms / 1000, GATE_POLL)
        entries = self._read("0", 0)  # ours from earlier steps: failed, or waiting for their user
        if len(entries) < identity.MAX_ITEMS:
            entries += self._read(">", 0 if entries else block_ms, identity.MAX_ITEMS - len(entries))
        ready = self._ready(entries)
        if not ready:
            return DEFER_SLEEP if entries else 0.0
        groups: dict[str, list] = defaultdict(list)
        for eid, f in ready:
            groups[f.get(b"kind", b"").decode()].append((eid, f))
        for kind, group in groups.items():
            if kind not in (identity.IDENTIFY, identity.MERGE):
                self._dead(group, f"unknown kind {kind!r}")
                continue
            pause = self._send(kind, group)
            if pause:
                return pause
        return 0.0

    def _ready(self, entries: list) -> list:
        """Entries whose LINE user has no state waiting to reach Braze.

        Braze ignores an identify or merge naming an alias it has not seen yet, so
        one must not overtake the /users/track call that creates the user's
        anonymous profile: it waits until the user is neither dirty nor in flight.
        """
        if not entries:
            return []
        p = self.r.pipeline(transaction=False)
        for _, f in entries:
            uid = f.get(b"line_user_id", b"")
            p.zscore(self.keys.outbox_ready, uid)
            p.hexists(self.keys.outbox_inflight, uid)
        res = p.execute()
        return [e for i, e in enumerate(entries) if res[2 * i] is None and not res[2 * i + 1]]

    def _read(self, start: str, block_ms: int, count: int = identity.MAX_ITEMS) -> list:
        resp = self.r.xreadgroup(STREAM_GROUP, CONSUMER, {self.keys.identity: start},
                                 count=count, block=(block_ms or None) if start == ">" else None)
        return [(eid, f) for eid, f in (resp[0][1] if resp else []) if f]

    def _send(self, kind: str, group: list) -> float:
        """Send one group under the shared policy; returns how long to sleep (0: go on)."""
        items = [identity.item_for(kind, _s(f[b"external_id"]), _s(f[b"line_user_id"])) for _, f in group]
        outcome = self.sender.send(
            lambda: self.client.post(identity.path(kind), identity.payload(kind, items), now=self.clock.now()))
        if isinstance(outcome, b.Delivered):
            bad = {i: reason for _, i, reason in outcome.errors}
            self._dead([g for i, g in enumerate(group) if i in bad], "; ".join(sorted(set(bad.values()))) or "")
            self._done([g for i, g in enumerate(group) if i not in bad])
            return 0.0
        if isinstance(outcome, b.BadRequest):
            if len(group) == 1:
                self._dead(group, outcome.reason)
                return 0.0
            for g in group:  # find the bad ones one by one
                pause = self._send(kind, [g])
                if pause:
                    return pause
            return 0.0
        if isinstance(outcome, b.Retryable):
            p = self.r.pipeline(transaction=False)
            for eid, _ in group:
                p.hincrby(self.keys.identity_attempts, eid, 1)
            attempts = p.execute()
            spent = [g for g, n in zip(group, attempts) if n >= self.settings.braze_retry_max_attempts]
            self._dead(spent, f"gave up after {self.settings.braze_retry_max_attempts} attempts: {outcome.reason}")
        # 429, auth failure, held by the limiter, or a failure: the items stay pending, sent again later.
        return IDLE_SLEEP

    def _done(self, group: list) -> None:
        if not group:
            return
        now = now_ms(self.clock)
        for _, f in group:
            links.link(self.r, self.keys, _s(f[b"external_id"]), _s(f[b"line_user_id"]), now_ms=now)
        self._ack(group)

    def _dead(self, group: list, reason: str) -> None:
        if not group:
            return
        p = self.r.pipeline(transaction=True)
        kinds = []
        for _, f in group:
            kind = _s(f.get(b"kind", b"?"))
            kinds.append(kind if kind in ("identify", "merge") else "identify")
            p.xadd(self.keys.dlq, dlq.entry(kinds[-1], reason, {k.decode(): _s(v) for k, v in f.items()}))
        p.hincrby(self.keys.stats, "dead_lettered", len(group))
        p.execute()
        metrics.dead_lettered(kinds)
        self._ack(group)

    def _ack(self, group: list) -> None:
        ids = [eid for eid, _ in group]
        p = self.r.pipeline(transaction=True)
        p.xack(self.keys.identity, STREAM_GROUP, *ids)
        p.xdel(self.keys.identity, *ids)
        p.hdel(self.keys.identity_attempts, *ids)
        p.execute()


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
