"""Beat's resync entries: one for the single channel (as always), or one per channel of the channels file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.config import Settings

ENTRY = "resync-followers"
TASK = "linesync.resync.start"


def resync_entries(settings: Settings, schedule_of: Callable[[str], Any]) -> dict[str, dict]:
    """``{entry name: beat entry}``: each channel's resync at its own ``resync_schedule``."""
    if not settings.channel_table:
        return {ENTRY: {"task": TASK, "schedule": schedule_of(settings.resync_schedule),
                        "kwargs": {"reason": "schedule"}}}
    return {f"{ENTRY}-{c.name}": {"task": TASK, "schedule": schedule_of(c.settings.resync_schedule),
                                  "kwargs": {"reason": "schedule", "channel": c.name}}
            for c in settings.channels()}
