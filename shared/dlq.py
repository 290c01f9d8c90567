"""Dead letters: things linesync gave up on, kept with the reason, for `linesync dlq`.

A letter is one entry of ``{P}:dlq`` with three fields: ``kind``, ``reason``,
``payload`` (JSON). Each kind's payload is built by one function here and read
by one (nothing else looks inside a payload):

  kind          built by                    payload                          read by
  webhook       :func:`webhook_letter`      stream_id, body (text)           :func:`read_webhook`
  track         :func:`track_letter`        user, objects                    :func:`read_track`
  track_event   :func:`track_event_letter`  object                           :func:`read_track_event`
  identify      :func:`identity_letter`     kind, external_id, line_user_id  :func:`read_identity`
  merge         (the same)                  (shared/identity.py's fields)    (the same)

``track`` letters written by releases before this one hold one object under
``object`` instead of ``objects``: replay reads only ``user``, so both shapes
replay alike. shared/lua/finish_batch.lua writes ``track`` and ``track_event``
letters with payloads built here (tests/shared/test_dlq.py reads them back).

:func:`replay` retries them. Replaying a ``track`` letter re-sends the user's
*current* state, never the dead-lettered one, so a replay can't move Braze
back in time. Replaying a ``webhook`` letter puts the body back on the webhook
stream, where the usual newer-wins and dedupe rules apply. ``track_event``
letters go back on the outbox's event list, ``identify`` and ``merge`` letters
on the identity stream. A letter that cannot be replayed (an unknown kind, a
payload missing what the replay needs) is kept, and counted with the reason.
Two replays at once re-queue each letter once (:func:`replay`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from shared import forward, identity, state, webhook_queue
from shared.errors import LinesyncError
from shared.keys import Keys

WEBHOOK, TRACK, TRACK_EVENT = "webhook", "track", "track_event"
KINDS = (WEBHOOK, TRACK, TRACK_EVENT, identity.IDENTIFY, identity.MERGE)
# Letters replayed per transaction: each chunk's re-queues and deletions commit together.
REPLAY_CHUNK = 500
# A replay gives up after this many transactions spoiled by other writers of the dead-letter stream.
MAX_CONFLICTS = 1000


@dataclass(frozen=True)
class Letter:
    id: str
    kind: str
    reason: str
    payload: dict


def entry(kind: str, reason: str, payload: dict) -> dict[str, str]:
    """The fields of one dead letter (callers XADD it in their own pipeline, with their ack)."""
    return {"kind": kind, "reason": reason, "payload": json.dumps(payload)}


# -- one builder per kind: (kind, payload) -----------------------------------------

def webhook_letter(stream_id: str, body: bytes | str) -> tuple[str, dict]:
    """A stored webhook body the consumer gave up on."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return WEBHOOK, {"stream_id": stream_id, "body": text}


def track_letter(user: str, objects: list[dict]) -> tuple[str, dict]:
    """/users/track objects of one LINE user given up on."""
    return TRACK, {"user": user, "objects": objects}


def track_event_letter(event: dict) -> tuple[str, dict]:
    """A forwarded custom event given up on."""
    return TRACK_EVENT, {"object": event}


def identity_letter(req: identity.Request) -> tuple[str, dict]:
    """A queued identify or merge item given up on (an unknown kind is filed as identify)."""
    return (req.kind if req.known else identity.IDENTIFY), req.fields()


# -- one reader per kind: (value, None) or (None, why it cannot be replayed) --------

def read_webhook(payload: dict) -> tuple[bytes | None, str | None]:
    if not isinstance(payload.get("body"), str):
        return None, "no body in the letter"
    try:
        return payload["body"].encode("utf-8"), None
    except UnicodeEncodeError:
        return None, "body is not valid UTF-8"


def read_track(payload: dict) -> tuple[str | None, str | None]:
    """The LINE user (both shapes: ``objects``, and ``object`` from older releases)."""
    user = payload.get("user")
    return (user, None) if isinstance(user, str) and user else (None, "no user in the letter")


def read_track_event(payload: dict) -> tuple[dict | None, str | None]:
    ev = payload.get("object")
    return (ev, None) if isinstance(ev, dict) else (None, "no event object in the letter")


def read_identity(letter: Letter) -> tuple[identity.Request | None, str | None]:
    pl = letter.payload
    req = identity.request({**pl, identity.KIND: pl.get(identity.KIND, letter.kind)})
    if not req.known:
        return None, f"unknown request kind {str(pl.get(identity.KIND))[:40]!r}"
    if not (isinstance(pl.get(identity.EXTERNAL_ID), str) and req.external_id
            and isinstance(pl.get(identity.LINE_USER_ID), str) and req.line_user_id):
        return None, "no external_id or line_user_id in the letter"
    return req, None


def subject(letter: Letter) -> str:
    """What a letter is about, in a few words, for `linesync dlq list`."""
    pl = letter.payload
    if letter.kind == TRACK:
        return read_track(pl)[0] or ""
    if letter.kind == WEBHOOK:
        return str(pl.get("stream_id", ""))
    if letter.kind == TRACK_EVENT:
        ev = read_track_event(pl)[0] or {}
        return str(ev.get("name", ""))
    if letter.kind in identity.KINDS:
        req = identity.request(pl)
        return f"{req.external_id} <- {req.line_user_id}"
    return ""


# -- the stream -------------------------------------------------------------------

def _letter(entry_id: bytes, fields: dict) -> Letter:
    f = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
    try:
        payload = json.loads(f.get("payload", "{}"))
    except ValueError:
        payload = {"raw": f.get("payload")}
    if not isinstance(payload, dict):
        payload = {"raw": payload}
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


def by_kind(r: redis.Redis, keys: Keys, scan: int = 10_000) -> Counter[str]:
    """Dead letters by kind (the first ``scan`` of them)."""
    return Counter(_s(f.get(b"kind", b"?")) for _, f in r.xrange(keys.dlq, count=scan))


def _s(v: bytes) -> str:
    return v.decode("utf-8", "replace")


def remove(r: redis.Redis, keys: Keys, ids: list[str]) -> int:
    return r.xdel(keys.dlq, *ids) if ids else 0


def purge(r: redis.Redis, keys: Keys) -> int:
    n = r.xlen(keys.dlq)
    r.delete(keys.dlq)
    return n


# -- replay -----------------------------------------------------------------------

@dataclass
class Replayed:
    """What :func:`replay` did, per letter kind."""

    replayed: Counter[str] = field(default_factory=Counter)  # kind -> letters re-queued (and deleted)
    kept: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, why) -> letters left in place
    profiles: int = 0  # distinct profiles queued again by ``track`` letters
    gone: int = 0  # letters no longer there when replayed (another replay, a purge, took them first)


def replay(r: redis.Redis, keys: Keys, letters: Iterable[Letter], *, now_ms: int,
           chunk: int = REPLAY_CHUNK) -> Replayed:
    """Queue each letter's work again and delete it; keep (and count) those that cannot be replayed.

    Each chunk of letters is re-queued and deleted in one transaction, so a
    crash never replays a letter that is then kept, nor deletes one not
    replayed. The transaction watches the dead-letter stream and re-queues only
    the letters still in it: when two replays (or a replay and a purge) race,
    the second's transaction fails, is tried again, and finds those letters
    gone, so each letter is re-queued once. A chunk spoiled by a concurrent
    write is retried in halves (a busy stream still lets small ones through).
    """
    out = Replayed()
    users: set[str] = set()
    todo = list(letters)
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    conflicts = 0
    while chunks:
        part = chunks.pop(0)
        done = _replay_chunk(r, keys, part, now_ms)
        if done is None:
            conflicts += 1
            if conflicts > MAX_CONFLICTS:
                raise LinesyncError("dead letters kept changing while replaying them; run the replay again")
            half = max(1, len(part) // 2)
            chunks[:0] = [part[:half], part[half:]] if len(part) > 1 else [part]
            continue
        replayed, kept, gone, chunk_users = done
        out.replayed.update(replayed)
        out.kept.update(kept)
        out.gone += gone
        users |= chunk_users
    out.profiles = len(users)
    return out


def _replay_chunk(r: redis.Redis, keys: Keys, letters: list[Letter], now_ms: int):
    """Re-queue and delete the letters of one chunk still in the stream, in one transaction.
    Returns (replayed, kept, gone, users), or None if another writer changed the stream meanwhile."""
    replayed, kept, users = Counter(), Counter(), set()
    with r.pipeline(transaction=True) as p:
        try:
            p.watch(keys.dlq)
            look = r.pipeline(transaction=False)  # any connection: the watch spans every writer
            for letter in letters:
                look.xrange(keys.dlq, letter.id, letter.id, count=1)
            present = [bool(x) for x in look.execute()]
            p.multi()
            done = []
            for letter, there in zip(letters, present):
                if not there:
                    continue
                why = _requeue(p, keys, letter, now_ms, users)
                if why:
                    kept[letter.kind, why] += 1
                else:
                    replayed[letter.kind] += 1
                    done.append(letter.id)
            if done:
                p.xdel(keys.dlq, *done)
            p.execute()
        except redis.WatchError:
            return None
    return replayed, kept, present.count(False), users


def _requeue(p: redis.client.Pipeline, keys: Keys, letter: Letter, now_ms: int, users: set[str]) -> str | None:
    """Queue one letter's work on ``p``; or why it cannot be replayed."""
    if letter.kind == WEBHOOK:
        body, why = read_webhook(letter.payload)
        if body is not None:
            webhook_queue.requeue(p, keys, body)
    elif letter.kind == TRACK:
        user, why = read_track(letter.payload)
        if user is not None:
            state.mark_dirty(p, keys, [user], now_ms=now_ms)
            users.add(user)
    elif letter.kind == TRACK_EVENT:
        ev, why = read_track_event(letter.payload)
        if ev is not None:
            p.rpush(keys.outbox_events, forward.encode(ev, now_ms))
    elif letter.kind in identity.KINDS:
        req, why = read_identity(letter)
        if req is not None:
            identity.enqueue(p, keys, req.kind, req.external_id, req.line_user_id)
    else:
        why = "unknown kind"
    return why
