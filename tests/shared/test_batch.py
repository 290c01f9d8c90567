"""The batch codec (shared/batch.py) and the Lua scripts that also write the batch agree.

Contract: a batch claim_batch.lua writes decodes to what was in Redis; a batch
:func:`batch.encode` writes is what claim_batch.lua hands back when the batch is
taken again, and what finish_batch.lua settles.
"""

import json

from shared import batch as codec
from shared import forward, outbox, payload, state
from shared.batch import Batch, Item
from shared.events import make_version
from shared.state import Change

V1 = make_version(1, 1, 0, 0)


def put(r, keys, user, st, ts=1, now=1000):
    state.apply(r, keys, [Change(user, make_version(ts, 1, 0, 0), st, None)], now_ms=now, dedupe_ttl=60)


def claim(r, keys, now=5000, **kw):
    return outbox.claim(r, keys, now_ms=now, max_objects=kw.pop("size", 75), flush_delay_ms=0, **kw)


def test_encode_and_decode_round_trip():
    b = Batch(id="b1", items=[Item("U1", "S", V1, ["crm-1", "crm-2"]), Item("U2", None, None, ["crm-3"]),
                              Item("U3", "U", V1)],
              events=[{"name": "line_postback", "properties": {"data": "a=1", "text": "\ud800"}}],
              attempts=3, created=1000, last_error="HTTP 503", retry_at=9000, config_checked=True)
    assert codec.decode(codec.encode(b)) == b
    assert codec.decode(codec.encode(b), taken_over=True).taken_over


def test_an_empty_list_from_lua_reads_as_empty():
    body = json.dumps({"id": "b1", "u": 2, "f": {}, "o": {}, "x": {}, "p": {}, "events": {}, "attempts": 0,
                       "created": 5})
    assert codec.decode(body) == Batch(id="b1", items=[], events=[], attempts=0, created=5)
    body = json.dumps({"id": "b1", "u": {}, "x": {}, "v": {}, "events": {}, "attempts": 0, "created": 5})
    assert codec.decode(body) == Batch(id="b1", items=[], events=[], attempts=0, created=5, flying=False)


def test_a_batch_stored_by_an_earlier_release_still_reads():
    body = json.dumps({"id": "b1", "items": [{"u": "U1", "x": "", "v": V1 + "S"}, {"u": "U2", "x": "crm-1\ncrm-2"}],
                       "events": ['{"name": "line_postback", "q": 5}'], "attempts": 2, "created": 5,
                       "last_error": "HTTP 500", "retry_at": 9, "config_checked": True})
    assert codec.decode(body) == Batch(id="b1", items=[Item("U1", "S", V1), Item("U2", None, None, ["crm-1", "crm-2"])],
                                       events=[{"name": "line_postback"}], attempts=2, created=5,
                                       last_error="HTTP 500", retry_at=9, config_checked=True, flying=False)


def test_a_batch_lua_writes_decodes_to_what_was_in_redis(r, keys):
    put(r, keys, "U1", "S")
    put(r, keys, "U2", "U")
    r.hset(keys.links_line, "U1", "crm-1\ncrm-2")
    r.hset(keys.links_line, "U3", "crm-3")            # linked, no state yet
    r.zadd(keys.outbox_ready, {"U3": 1000})
    r.rpush(keys.outbox_events, forward.encode({"name": "line_postback", "properties": {"data": "x"}}, 900))
    got = claim(r, keys)
    stored = codec.decode(r.hget(keys.batches, got.id))
    assert stored.items == got.items == [Item("U1", "S", V1, ["crm-1", "crm-2"]), Item("U2", "U", V1),
                                         Item("U3", None, None, ["crm-3"])]
    assert stored.events == got.events == [{"name": "line_postback", "properties": {"data": "x"}}]
    assert (stored.attempts, stored.created, stored.last_error, stored.retry_at, stored.config_checked) == \
        (0, 5000, "", 0, False)


def test_a_batch_python_writes_is_what_lua_hands_back_and_settles(r, keys):
    put(r, keys, "U1", "S")
    r.hset(keys.links_line, "U2", "crm-9")
    r.zadd(keys.outbox_ready, {"U2": 1000})
    r.rpush(keys.outbox_events, forward.encode({"name": "line_message_received",
                                                "properties": {"text": "\ud800"}}, 900))   # cjson can't read it
    b = claim(r, keys, lease_ms=1000)
    b.attempts, b.last_error, b.retry_at, b.config_checked = 2, "HTTP 500", 6000, True
    assert outbox.reschedule(r, keys, b, due_ms=6000, save=True, retry=True)
    assert r.hget(keys.batches, b.id).decode() == codec.encode(b)
    again = claim(r, keys, now=6000)                   # claim_batch.lua returns the stored body as is
    assert again.taken_over and again.id == b.id
    assert (again.items, again.events, again.attempts, again.last_error, again.retry_at, again.config_checked) == \
        (b.items, b.events, 2, "HTTP 500", 6000, True)
    assert outbox.finish(r, keys, again, delivered=3)  # finish_batch.lua settles it: every user released
    assert r.hlen(keys.outbox_inflight) == 0 and r.hlen(keys.batches) == 0 and r.zcard(keys.batches_due) == 0


def test_an_events_only_batch_goes_through_every_script(r, keys):
    r.rpush(keys.outbox_events, forward.encode({"name": "line_postback", "properties": {}}, 900))
    b = claim(r, keys)
    assert b.items == [] and b.users == [] and len(b.events) == 1
    assert outbox.reschedule(r, keys, b, due_ms=6000, save=True)
    again = claim(r, keys, now=6000)
    assert again.events == b.events and outbox.finish(r, keys, again, delivered=1)
    assert r.hlen(keys.batches) == 0


def test_claim_counts_objects_as_payload_makes_them(r, keys):
    put(r, keys, "U0", "S")                           # its alias profile + 2 linked profiles: 3 objects
    r.hset(keys.links_line, "U0", "crm-1\ncrm-2")
    r.hset(keys.links_line, "U1", "crm-3")            # no state yet: only its linked profile, 1 object
    r.zadd(keys.outbox_ready, {"U1": 1000})
    put(r, keys, "U2", "U", now=1001)
    b = claim(r, keys, size=4)
    assert b.users == ["U0", "U1"]
    assert sum(len(payload.objects_for(i.user, i.state, i.external_ids, "sg")) for i in b.items) == 4


def test_a_lua_batch_with_raw_bytes_and_utf8_links_decodes(r, keys):
    # claim_batch.lua stores each state as packed (bytes of 128 and more as they are, next to
    # UTF-8 links and events): decode reads them back exactly.
    user = "U" + "ab" * 16                             # a LINE user id: kept in a bucket, packed
    v = make_version(1_700_000_000_123, 1_700_000_000_456, 7, 3)
    state.apply(r, keys, [Change(user, v, "S", None)], now_ms=1000, dedupe_ttl=60)
    state.apply(r, keys, [Change("odd-id", "legacy-version", "U", None)], now_ms=1000, dedupe_ttl=60)
    r.hset(keys.links_line, user, "crm-café\ncrm-東京")
    r.rpush(keys.outbox_events, forward.encode({"name": "line_postback", "properties": {"data": "é"}}, 900))
    got = claim(r, keys)
    body = r.hget(keys.batches, got.id)
    assert not body.isascii() and b'"p"' in body
    assert sorted(got.items, key=lambda i: i.user) == sorted(
        [Item(user, "S", v, ["crm-café", "crm-東京"]), Item("odd-id", "U", "legacy-version")], key=lambda i: i.user)
    assert got.events == [{"name": "line_postback", "properties": {"data": "é"}}]
    assert codec.decode(body).items == got.items


def line(i: int) -> str:
    return "U" + f"{i:02x}" * 16


def test_line_users_are_named_by_their_16_bytes_and_in_flight_under_them(r, keys):
    # Bytes JSON escapes (0x22 ", 0x5c \, 0x2f /, 0x0a) and bytes of 128 and more, next to an id of another form.
    users = [line(0x22), line(0x5c), line(0x2f), line(0x0a), line(0xe9)]
    for u in users:
        put(r, keys, u, "S")
    put(r, keys, "odd-id", "U")
    got = claim(r, keys)
    body = json.loads(r.hget(keys.batches, got.id).decode("latin-1"))
    assert body["u"] == 2  # a number: a release before this layout fails on it instead of losing the users
    assert sorted(got.users) == sorted(users + ["odd-id"]) and got.flying
    assert codec.decode(r.hget(keys.batches, got.id)).items == got.items
    assert {f for f in r.hkeys(keys.outbox_flying)} == {state.field(u) for u in users}
    assert r.hkeys(keys.outbox_inflight) == [b"odd-id"]
    assert outbox.in_flight(r, keys, users[:1] + ["odd-id", line(1)]) == [got.id, got.id, None]
    assert outbox.reschedule(r, keys, got, due_ms=6000, save=True)   # Python writes the same layout
    again = claim(r, keys, now=6000)
    assert again.items == got.items and again.flying
    assert outbox.finish(r, keys, again, delivered=6)
    assert r.hlen(keys.outbox_flying) == 0 and r.hlen(keys.outbox_inflight) == 0


def test_a_batch_an_earlier_release_claimed_keeps_its_users_in_flight_by_id_until_finished(r, keys):
    u, other = line(1), line(2)
    put(r, keys, u, "S")
    old = {"id": "b-old", "u": [u], "x": [False], "v": [V1 + "S"], "events": [], "attempts": 0, "created": 900}
    r.hset(keys.batches, "b-old", json.dumps(old))
    r.zadd(keys.batches_due, {"b-old": 100_000})
    r.hset(keys.batches_owner, "b-old", "old-worker/1")
    r.hset(keys.outbox_inflight, u, "b-old")          # as that release marked it
    put(r, keys, u, "U", ts=2)                         # changed while in flight
    put(r, keys, other, "S")
    b = claim(r, keys)
    assert b.users == [other]                          # u waits for the earlier release's batch
    assert outbox.finish(r, keys, b, delivered=1)
    taken = claim(r, keys, now=100_000)                # its lease lapsed: taken over here
    assert taken.id == "b-old" and not taken.flying and taken.users == [u]
    taken.attempts = 1
    assert outbox.reschedule(r, keys, taken, due_ms=100_001, save=True)   # put back in its own layout
    assert "f" not in json.loads(r.hget(keys.batches, "b-old"))
    taken = claim(r, keys, now=100_001)
    assert outbox.finish(r, keys, taken, delivered=1)  # released by id, where that release put it
    assert r.hlen(keys.outbox_inflight) == 0
    again = claim(r, keys, now=100_002)
    assert [(i.user, i.state) for i in again.items] == [(u, "U")]
