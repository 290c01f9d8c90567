"""Outbox helpers for tests: what "delivered" means whatever the outbox's layout."""

from __future__ import annotations

from shared import outbox


def deliver_all(r, keys, *, now_ms: int = 10**13) -> list[str]:
    """Claim and finish every pending batch as if Braze took it; the users sent, in order."""
    sent: list[str] = []
    while isinstance(b := outbox.claim(r, keys, now_ms=now_ms, max_objects=75, flush_delay_ms=0), outbox.Batch):
        sent += b.users
        outbox.finish(r, keys, b, delivered=len(b.items), now_ms=now_ms)
    return sent


def pending(r, keys) -> int:
    """How many profiles wait to be sent."""
    return outbox.sizes(r, keys)["pending_profiles"]
