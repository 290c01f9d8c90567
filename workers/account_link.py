"""LINE account linking: an ``accountLink`` event whose nonce the brand registered
beforehand (POST /v1/link-nonces) links and identifies the user automatically.

Runs as a consumer hook, before the batch is acknowledged; each event is
handled once (a mark keyed by its webhookEventId, written in the same
transaction as the identify request), so a replayed or redelivered event does
nothing. A nonce is single use: it is deleted in the same atomic step that
reads it (shared/identity.py take_nonce), so two events carrying the same
nonce can never both link; only a replay of the event that took it finds it again.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from shared import identity
from shared.config import Settings
from shared.events import Event
from shared.keys import Keys
from shared.links import link
from shared.clock import redis_now


class AccountLinkHook:
    def __init__(self, r: redis.Redis, keys: Keys, settings: Settings):
        self.r, self.keys, self.settings = r, keys, settings

    def __call__(self, events: Sequence[Event]) -> None:
        for ev in events:
            if ev.type == "accountLink" and ev.user_id:
                self.handle(ev)

    def handle(self, ev: Event) -> str:
        data = ev.raw.get("link") if isinstance(ev.raw.get("link"), dict) else {}
        event_key = ev.event_id or ev.version
        mark = self.keys.seen("accountLink:" + event_key)
        if self.r.exists(mark):
            return "duplicate"
        ext = None
        if data.get("result") != "ok":
            outcome = "account_link_failed"
        else:
            # Single use: the nonce is deleted as it is read; a replay of this event finds it again.
            ext = identity.take_nonce(self.r, self.keys, str(data.get("nonce", "")), event_key,
                                      ttl=self.settings.dedupe_ttl_seconds)
            outcome = "account_link_ok" if ext else "account_link_unknown_nonce"
        if ext:
            # Linking is idempotent, so it goes first: a crash before the mark below
            # replays it harmlessly.
            link(self.r, self.keys, ext, ev.user_id, now_ms=int(redis_now(self.r) * 1000))
        p = self.r.pipeline(transaction=True)
        p.set(mark, "1", ex=self.settings.dedupe_ttl_seconds)
        p.hincrby(self.keys.stats, outcome, 1)
        if ext:
            identity.forget_taken_nonce(p, self.keys, event_key)
            identity.enqueue(p, self.keys, identity.IDENTIFY, ext, ev.user_id)
        p.execute()
        return outcome
