"""Dead letters and their replay, on a real Redis."""

from shared import dlq, forward, outbox, webhook_queue

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



def test_two_replays_at_once_requeue_each_letter_once(r, keys, redis_url):
    import threading

    import redis as redis_py

    n = 1200  # several chunks each
    for i in range(n):
        kind = ("identify", "merge", "track_event", "webhook")[i % 4]
        if kind == "webhook":
            letter(r, keys, kind, {"stream_id": f"{i}-0", "body": f'{{"n":{i}}}'})
        elif kind == "track_event":
            letter(r, keys, kind, {"object": {"name": "line_postback", "properties": {"n": i}}})
        else:
            letter(r, keys, kind, {"kind": kind, "external_id": f"crm-{i}", "line_user_id": U1})
    both_listed = threading.Barrier(2)
    results, errors = [], []

    def operator():  # `linesync dlq replay`: its own client, lists, then replays what it listed
        client = redis_py.Redis.from_url(redis_url)
        try:
            found = dlq.list_letters(client, keys, count=10_000)
            both_listed.wait(10)
            results.append(dlq.replay(client, keys, found, now_ms=5000))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        finally:
            client.close()

    threads = [threading.Thread(target=operator) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(sum(res.replayed.values()) for res in results) == n
    assert sum(res.gone for res in results) == n          # what one took, the other found gone
    assert r.xlen(keys.dlq) == 0
    assert r.xlen(keys.identity) == n // 2
    assert r.llen(keys.outbox_events) == n // 4
    assert r.xlen(keys.webhooks) == n // 4
    ids = sorted(f[b"external_id"] for _, f in r.xrange(keys.identity))
    assert ids == sorted({f"crm-{i}".encode() for i in range(n) if i % 4 in (0, 1)})


# -- one builder and one reader per kind; the Lua script that writes letters agrees -----------

def test_each_kinds_letter_reads_back_through_its_reader(r, keys):
    from shared import identity

    built = [dlq.webhook_letter("1-0", b'{"destination":"U","events":[]}'),
             dlq.track_letter(U1, [{"native_line_id": U1}]),
             dlq.track_event_letter({"name": "line_postback", "properties": {}}),
             dlq.identity_letter(identity.Request("merge", "crm-1", U1)),
             dlq.identity_letter(identity.Request("bogus", "crm-2", U1))]
    for kind, payload in built:
        letter(r, keys, kind, payload)
    web, track, event, merge, bogus = dlq.list_letters(r, keys)
    assert dlq.read_webhook(web.payload) == (b'{"destination":"U","events":[]}', None)
    assert dlq.read_track(track.payload) == (U1, None) and track.payload["objects"] == [{"native_line_id": U1}]
    assert dlq.read_track_event(event.payload) == ({"name": "line_postback", "properties": {}}, None)
    assert dlq.read_identity(merge) == (identity.Request("merge", "crm-1", U1), None)
    assert bogus.kind == "identify" and dlq.read_identity(bogus) == (None, "unknown request kind 'bogus'")
    assert [dlq.subject(x) for x in (web, track, event, merge)] == ["1-0", U1, "line_postback", f"crm-1 <- {U1}"]
    # a track letter of an older release (one object under "object") reads the same
    assert dlq.read_track({"user": U1, "object": {}}) == (U1, None)


def test_track_letters_written_by_finish_batch_lua_read_back(r, keys):
    """finish_batch.lua XADDs the letters the deliverer built: they read back through dlq's readers."""
    from shared import state
    from shared.events import make_version
    from shared.state import Change

    state.apply(r, keys, [Change(U1, make_version(1, 1, 0, 0), "S", None)], now_ms=1000, dedupe_ttl=60)
    r.rpush(keys.outbox_events, forward.encode({"name": "line_postback", "properties": {"d": "\u00e9"}}, 900))
    batch = outbox.claim(r, keys, now_ms=5000, max_objects=75, flush_delay_ms=0)
    letters = [(k, "invalid", pl) for k, pl in (dlq.track_letter(U1, [{"native_line_id": U1}]),
                                                 dlq.track_event_letter(batch.events[0]))]
    assert outbox.finish(r, keys, batch, delivered=0, dead=letters, now_ms=5000)
    track, event = dlq.list_letters(r, keys)
    assert (track.kind, track.reason, dlq.read_track(track.payload)) == ("track", "invalid", (U1, None))
    assert track.payload == {"user": U1, "objects": [{"native_line_id": U1}]}
    assert (event.kind, dlq.read_track_event(event.payload)[0]) == (
        "track_event", {"name": "line_postback", "properties": {"d": "\u00e9"}})
    done = dlq.replay(r, keys, [track, event], now_ms=6000)
    assert done.replayed == {"track": 1, "track_event": 1} and r.zscore(keys.outbox_ready, U1) == 6000
