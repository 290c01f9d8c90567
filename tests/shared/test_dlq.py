"""Dead letters and their replay, on a real Redis."""

from shared import dlq, outbox, webhook_queue

U1 = "U" + "a" * 32


def letter(r, keys, kind, payload, reason="x"):
    return r.xadd(keys.dlq, dlq.entry(kind, reason, payload)).decode()


def test_every_kind_is_replayed_and_removed(r, keys):
    letter(r, keys, "webhook", {"stream_id": "1-0", "body": '{"destination":"U","events":[]}'})
    letter(r, keys, "track", {"user": U1, "object": {}})
    letter(r, keys, "track", {"user": U1, "object": {}})
    letter(r, keys, "track_event", {"object": {"name": "line_postback", "properties": {}}})
    letter(r, keys, "identify", {"kind": "identify", "external_id": "crm-1", "line_user_id": U1})
    letter(r, keys, "merge", {"kind": "merge", "external_id": "crm-2", "line_user_id": U1})
    done = dlq.replay(r, keys, dlq.list_letters(r, keys), now_ms=5000)
    assert done.replayed == {"webhook": 1, "track": 2, "track_event": 1, "identify": 1, "merge": 1}
    assert not done.kept and done.profiles == 1
    assert r.xlen(keys.dlq) == 0
    assert r.xrange(keys.webhooks)[0][1][webhook_queue.BODY_FIELD] == b'{"destination":"U","events":[]}'
    assert r.zscore(keys.outbox_ready, U1) == 5000
    batch = outbox.claim(r, keys, now_ms=10_000, max_objects=75, flush_delay_ms=0)
    assert [e["name"] for e in batch.events] == ["line_postback"]
    items = [(f[b"kind"], f[b"external_id"], f[b"line_user_id"]) for _, f in r.xrange(keys.identity)]
    assert items == [(b"identify", b"crm-1", U1.encode()), (b"merge", b"crm-2", U1.encode())]


def test_letters_that_cannot_be_replayed_are_kept_and_counted(r, keys):
    kept = [
        letter(r, keys, "identify", {"kind": "bogus", "external_id": "crm-1", "line_user_id": U1}),
        letter(r, keys, "merge", {"kind": "merge", "external_id": "crm-2"}),
        letter(r, keys, "webhook", {"stream_id": "1-0"}),
        letter(r, keys, "something-new", {}),
    ]
    letter(r, keys, "identify", {"kind": "identify", "external_id": "crm-3", "line_user_id": U1})
    done = dlq.replay(r, keys, dlq.list_letters(r, keys), now_ms=5000)
    assert done.replayed == {"identify": 1}
    assert done.kept == {("identify", "unknown request kind 'bogus'"): 1,
                         ("merge", "no external_id or line_user_id in the letter"): 1,
                         ("webhook", "no body in the letter"): 1,
                         ("something-new", "unknown kind"): 1}
    assert [l.id for l in dlq.list_letters(r, keys)] == kept
    assert r.xlen(keys.identity) == 1

