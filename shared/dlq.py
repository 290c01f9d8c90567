"""Dead letters: things linesync gave up on, kept with the reason, for `linesync dlq`.

Kinds:
  webhook  a stored body the consumer could not process (payload: body text, stream id)
  track    a /users/track object Braze rejected or that ran out of retries (payload: user, object)
  identify / merge  a /users/identify or /users/merge request item (issue 5)

Replaying a ``track`` letter re-sends the user's *current* state, never the
dead-lettered one, so a replay can't move Braze back in time. Replaying a
``webhook`` letter puts the body back on the webhook stream, where the usual
newer-wins and dedupe rules apply.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import redis

from shared.keys import Keys


@dataclass(frozen=True)
class Letter:
    id: str
    kind: str
    reason: str
    payload: dict


def entry(kind: str, reason: str, payload: dict) -> dict[str, str]:
    """The fields of one dead letter (callers XADD it in their own pipeline, with their ack).

    shared/lua/finish_batch.lua writes the same three fields for /users/track items.
    """
    return {"kind": kind, "reason": reason, "payload": json.dumps(payload)}


def _letter(entry_id: bytes, fields: dict) -> Letter:
    f = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
    try:
        payload = json.loads(f.get("payload", "{}"))
    except ValueError:
        payload = {"raw": f.get("payload")}
    return Letter(entry_id.decode(), f.get("kind", "?"), f.get("reason", ""), payload)


def list_letters(r: redis.Redis, keys: Keys, *, count: int = 100, kind: str | None = None) -> list[Letter]:
    out = []
    for entry_id, fields in r.xrange(keys.dlq, count=count if kind is None else None):
        letter = _letter(entry_id, fields)
        if kind is None or letter.kind == kind:
            out.append(letter)
        if len(out) >= count:
            break
    return out


def summary(r: redis.Redis, keys: Keys, scan: int = 10_000) -> dict[str, int]:
    """Dead letters by kind and reason (the first ``scan`` of them), plus the total."""
    by = Counter()
    for entry_id, fields in r.xrange(keys.dlq, count=scan):
        letter = _letter(entry_id, fields)
        by[f"{letter.kind}: {letter.reason[:80]}"] += 1
    return {"total": r.xlen(keys.dlq), **dict(by.most_common())}


def remove(r: redis.Redis, keys: Keys, ids: list[str]) -> int:
    return r.xdel(keys.dlq, *ids) if ids else 0


def purge(r: redis.Redis, keys: Keys) -> int:
    n = r.xlen(keys.dlq)
    r.delete(keys.dlq)
    return n
