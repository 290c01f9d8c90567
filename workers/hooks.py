"""Hooks the consumer runs on every parsed batch before acknowledging it."""

from __future__ import annotations

from workers.account_link import AccountLinkHook
from workers.consume import EventHook


def consume_hooks(rt) -> list[EventHook]:
    """The hooks for this worker: account linking (accountLink events with a registered nonce)."""
    return [AccountLinkHook(rt.r, rt.keys, rt.settings)]
