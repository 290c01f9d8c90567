"""Hooks the consumer runs on every parsed batch before acknowledging it."""

from __future__ import annotations

from workers.consume import EventHook


def consume_hooks(rt) -> list[EventHook]:
    """The hooks for this worker's settings (account linking registers here)."""
    return []
