"""A batch of the outbox and its items, as stored in Redis: the one codec.

The stored value (``{P}:batches``: batch id -> JSON) is written by
shared/lua/claim_batch.lua when it takes a new batch (the script must store it
before anything is sent, in the same atomic step that marks its users in
flight) and by :func:`encode` when a batch is put back with its attempts; it is
read only here (:func:`decode`). tests/shared/test_batch.py round-trips it
through the real scripts, so the two writers agree. Layout::

    {"id":       "<batch id>",
     "u":        2,                                       # this layout (see below)
     "f":        ["<a LINE user's 16 bytes (state field)> | <an id of another form>", ...],
     "o":        [<0-based index in f of an id of another form>, ...],  # absent: none
     "x":        ["<its linked external ids, newline-separated>" | false, ...],  # absent: none
     "p":        ["<its state value, packed>" | false, ...],  # written by claim_batch.lua, or
     "v":        ["<version><S|U>" | false, ...],         # written by encode; false: no state yet
     "events":   ["<forwarded event JSON, as queued on {P}:outbox:events (q dropped once put back)>"],
     "attempts": 0, "created": <ms>,
     "last_error": "", "retry_at": <ms>, "config_checked": false}   # the last three: once put back

The items are parallel arrays (f, x, p or v). A LINE user ("U" + 32 hex digits)
is named by its 16 bytes, as its state bucket and ``{P}:outbox:flying`` hold
it, so the script formats no user id; an id of another form is as given (and
in flight in ``{P}:outbox:inflight``). ``"u": 2`` says so: a release before
this layout read ``"u"`` as the list of users, and fails on a number instead
of sending the batch without them (the batch is then taken over by a current
worker when its lease lapses). Batches that release claimed (``"u"``: the
users' ids; their users in flight in ``{P}:outbox:inflight``) still read, and
keep that layout when put back (:attr:`Batch.flying` False).

A state is ``"p"`` when claim_batch.lua wrote the batch: the value as stored
(shared/state.py pack; its bytes as they are), so Lua formats no version and
:func:`decode` unpacks it; ``"v"`` (version and state as text) when
:func:`encode` wrote it.

Redis's cjson writes bytes of 128 and more as they are, so a body Lua wrote may
be no UTF-8 text (a packed value's bytes, or UTF-8 of links and events next to
them): such a body is read as Latin-1 (one character per byte), each packed
value is its characters' bytes, and each other string is UTF-8 read from them.
A body :func:`encode` wrote is ASCII and read as JSON.

Parallel arrays because the script builds them from its HMGET replies as they
come, with no Lua table per user (that is most of a claim's Redis time). Batches
stored by still earlier releases hold ``"items": [{"u", "x", "v"}, ...]``
instead: still read. Redis's cjson writes an empty list as ``{}``. Events stay
JSON text inside the JSON: one Lua's cjson cannot read (a lone surrogate
escape, which Python's json writes) then passes through the scripts untouched.

How many /users/track objects an item makes (1 if it has a state, plus 1 per
linked external id) is counted where the batch is filled, in claim_batch.lua,
as shared/payload.py's ``objects_for`` makes them (a contract test checks the
two agree).

The lease (who holds the batch, until when) is not part of the value: it lives
in ``{P}:batches:owner`` and ``{P}:batches:due`` (shared/outbox.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from shared import state

# The field of a queued event holding when it was queued (ms); dropped when the batch is read.
QUEUED_AT = "q"


@dataclass
class Item:
    user: str
    state: str | None            # S / U, or None (linked profiles only, no state yet)
    version: str | None
    external_ids: list[str] = field(default_factory=list)


@dataclass
class Batch:
    id: str
    items: list[Item]
    events: list[dict]
    attempts: int
    created: int
    last_error: str = ""
    taken_over: bool = False
    retry_at: int = 0  # after a failure: when its own backoff lets it go again (ms)
    config_checked: bool = False  # once rejected whole as a configuration error: bisect fully next time
    # Its LINE users in flight by their 16 bytes in {P}:outbox:flying (False: a batch an earlier
    # release claimed, every user in flight by id in {P}:outbox:inflight).
    flying: bool = True
    # The lease this sender holds (not stored in the JSON): its claim's token and expiry (ms).
    owner: str = ""
    lease_until: int = 0

    def to_json(self) -> str:
        return encode(self)

    @property
    def users(self) -> list[str]:
        return [i.user for i in self.items]


def _item(user: str, links: str | bool | None, v: str | bool | None) -> Item:
    return Item(user=user, state=v[-1] if v else None, version=v[:-1] if v else None,
                external_ids=[x for x in (links or "").split("\n") if x])


def in_flight(batch: Batch) -> tuple[list[bytes], list[str]]:
    """Under what its users are in flight: (16-byte fields in {P}:outbox:flying, ids in {P}:outbox:inflight)."""
    if not batch.flying:
        return [], batch.users
    fields, ids = [], []
    for u in batch.users:
        f = state.field(u)
        if f is None:
            ids.append(u)
        else:
            fields.append(f)
    return fields, ids


def encode(batch: Batch) -> str:
    """The stored JSON of ``batch`` (what claim_batch.lua writes, plus what a retry keeps)."""
    if batch.flying:
        fields = [state.field(i.user) for i in batch.items]
        users: dict = {"u": 2, "f": [f.decode("latin-1") if f is not None else i.user
                                     for f, i in zip(fields, batch.items)],
                       "o": [n for n, f in enumerate(fields) if f is None]}
    else:
        users = {"u": [i.user for i in batch.items]}
    return json.dumps({
        "id": batch.id,
        **users,
        "x": ["\n".join(i.external_ids) or False for i in batch.items],
        "v": [i.version + i.state if i.version is not None and i.state is not None else False
              for i in batch.items],
        "events": [json.dumps(e) for e in batch.events],
        "attempts": batch.attempts,
        "created": batch.created,
        "last_error": batch.last_error,
        "retry_at": batch.retry_at,
        "config_checked": batch.config_checked,
    })


def _utf8(s: str) -> str:
    """A string of a body read as Latin-1: the text its bytes (UTF-8) spell."""
    return s if s.isascii() else s.encode("latin-1").decode("utf-8")


def _unpacked(p: str | bool | None) -> str | bool:
    """version + state of a packed value (its characters are its bytes), or false."""
    if not p:
        return False
    version, st = state.unpack(p.encode("latin-1"))
    return version + st


def decode(body: bytes | str, *, taken_over: bool = False) -> Batch:
    """The batch stored as ``body`` (by claim_batch.lua or :func:`encode`)."""
    raw = isinstance(body, bytes) and not body.isascii()
    d = json.loads(body.decode("latin-1") if raw else body)
    events = []
    for e in d.get("events") or []:  # cjson encodes an empty list as {}
        ev = json.loads(_utf8(e) if raw else e) if isinstance(e, str) else e
        ev.pop(QUEUED_AT, None)
        events.append(ev)
    flying = d.get("u") == 2
    if "u" in d:
        if flying:
            others = set(d.get("o") or [])  # cjson: [] is {}
            users = [(_utf8(f) if raw else f) if n in others else state.user_of(f.encode("latin-1"))
                     for n, f in enumerate(d["f"] or [])]
        else:
            users = [_utf8(u) for u in d["u"] or []] if raw else d["u"] or []
        links = d.get("x") or []
        if raw:
            links = [_utf8(x) if x else x for x in links]
        states = [_unpacked(p) for p in d["p"] or []] if "p" in d else d.get("v") or []
        items = [_item(u, links[i] if i < len(links) else None, states[i] if i < len(states) else None)
                 for i, u in enumerate(users)]
    else:  # stored by an earlier release
        items = [_item(it["u"], it.get("x"), it.get("v")) for it in d.get("items") or []]
    return Batch(id=d["id"], items=items, events=events,
                 attempts=int(d.get("attempts", 0)), created=int(d.get("created", 0)),
                 last_error=d.get("last_error", ""), taken_over=taken_over, retry_at=int(d.get("retry_at", 0)),
                 config_checked=bool(d.get("config_checked", False)), flying=flying)
