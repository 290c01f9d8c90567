"""Work left in Redis by a channel no longer in the channels file: found and reported, never dropped.

A channel removed from ``LINESYNC_CHANNELS_FILE`` keeps its keys (``{P}:ch:<name>:...``): its
queued webhooks, outbox, batches, identity queue and dead letters stay where they are, and
nothing serves them until the channel is back in the file. :func:`find` lists such channels
with what they still hold; ``linesync status`` and every worker at start report them.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from shared import outbox
from shared.keys import Keys


def find(r: redis.Redis, prefix: str, served: Iterable[str]) -> dict[str, dict[str, int]]:
    """``{channel: {webhooks, profiles_waiting, open_batches, identity, dead_letters}}`` for every
    channel with keys in Redis that ``served`` lacks and that still holds work."""
    base = Keys(prefix)
    served = set(served)
    names = set()
    for key in r.scan_iter(match=base.channel_streams, count=1000):
        name = base.channel_of(key.decode() if isinstance(key, bytes) else key)
        if name and name not in served:
            names.add(name)
    out = {}
    for name in sorted(names):
        k = base.for_channel(name)
        p = r.pipeline(transaction=False)
        p.xlen(k.webhooks)
        p.hlen(k.batches)
        p.xlen(k.identity)
        p.xlen(k.dlq)
        webhooks, batches, ident, dead = p.execute()
        ready = outbox.sizes(r, k)["pending_profiles"]
        work = {"webhooks": webhooks, "profiles_waiting": ready, "open_batches": batches, "identity": ident,
                "dead_letters": dead}
        if any(work.values()):
            out[name] = work
    return out


def describe(found: dict[str, dict[str, int]]) -> list[str]:
    return [f"channel {name} is not in LINESYNC_CHANNELS_FILE but has work left in Redis: "
            + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in w.items() if v)
            + " (nothing serves it until it is back in the file)" for name, w in found.items()]
