"""Dead letters: things linesync gave up on, kept with the reason, for `linesync dlq`.

Kinds:
  webhook      a stored body the consumer could not process (payload: body text, stream id)
  track        /users/track objects of one user Braze rejected or that ran out of retries (payload:
               :func:`track_payload`; letters written before it hold one object under ``object``:
               replay reads only ``user``, so both shapes replay alike)
  track_event  a forwarded custom event Braze rejected or that ran out of retries (payload: object)
  identify / merge  a /users/identify or /users/merge request item (payload: kind, external_id,
               line_user_id)

:func:`replay` retries them. Replaying a ``track`` letter re-sends the user's
*current* state, never the dead-lettered one, so a replay can't move Braze
back in time. Replaying a ``webhook`` letter puts the body back on the webhook
stream, where the usual newer-wins and dedupe rules apply. ``track_event``
letters go back on the outbox's event list, ``identify`` and ``merge`` letters
on the identity stream. A letter that cannot be replayed (an unknown kind, a
payload missing what the replay needs) is kept, and counted with the reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from shared import forward, identity, state, webhook_queue
from shared.keys import Keys

# Letters replayed per transaction: each chunk's re-queues and deletions commit together.
REPLAY_CHUNK = 500


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


def track_payload(user: str, objects: list[dict]) -> dict:
    """The payload of a ``track`` letter: the LINE user and the objects of it given up on."""
    return {"user": user, "objects": objects}


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


@dataclass
class Replayed:
    """What :func:`replay` did, per letter kind."""

    replayed: Counter[str] = field(default_factory=Counter)  # kind -> letters re-queued (and deleted)
    kept: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, why) -> letters left in place
    profiles: int = 0  # distinct profiles queued again by ``track`` letters


def replay(r: redis.Redis, keys: Keys, letters: Iterable[Letter], *, now_ms: int) -> Replayed:
    """Queue each letter's work again and delete it; keep (and count) those that cannot be replayed.

    Each chunk of letters is re-queued and deleted in one transaction, so a
    crash never replays a letter that is then kept, nor deletes one not replayed.
    """
    out = Replayed()
    users: set[str] = set()
    todo = list(letters)
    for start in range(0, len(todo), REPLAY_CHUNK):
        p = r.pipeline(transaction=True)
        done: list[str] = []
        for letter in todo[start:start + REPLAY_CHUNK]:
            why = _requeue(p, keys, letter, now_ms, users)
            if why:
                out.kept[letter.kind, why] += 1
            else:
                out.replayed[letter.kind] += 1
                done.append(letter.id)
        if done:
            p.xdel(keys.dlq, *done)
        p.execute()
    out.profiles = len(users)
    return out


def _requeue(p: redis.client.Pipeline, keys: Keys, letter: Letter, now_ms: int, users: set[str]) -> str | None:
    """Queue one letter's work on ``p``; or why it cannot be replayed."""
    pl = letter.payload
    if letter.kind == "webhook":
        if not isinstance(pl.get("body"), str):
            return "no body in the letter"
        try:
            body = pl["body"].encode("utf-8")
        except UnicodeEncodeError:
            return "body is not valid UTF-8"
        webhook_queue.requeue(p, keys, body)
    elif letter.kind == "track":
        if not isinstance(pl.get("user"), str) or not pl["user"]:
            return "no user in the letter"
        state.mark_dirty(p, keys, [pl["user"]], now_ms=now_ms)
        users.add(pl["user"])
    elif letter.kind == "track_event":
        if not isinstance(pl.get("object"), dict):
            return "no event object in the letter"
        p.rpush(keys.outbox_events, forward.encode(pl["object"], now_ms))
    elif letter.kind in (identity.IDENTIFY, identity.MERGE):
        kind = pl.get("kind", letter.kind)
        if kind not in (identity.IDENTIFY, identity.MERGE):
            return f"unknown request kind {str(kind)[:40]!r}"
        ext, user = pl.get("external_id"), pl.get("line_user_id")
        if not (isinstance(ext, str) and ext and isinstance(user, str) and user):
            return "no external_id or line_user_id in the letter"
        identity.enqueue(p, keys, kind, ext, user)
    else:
        return "unknown kind"
    return None
