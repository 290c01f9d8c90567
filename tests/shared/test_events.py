import json

import pytest

from shared.errors import InvalidWebhook
from shared.events import SUBSCRIBED, UNSUBSCRIBED, make_version, parse_body, version_timestamp


def body(*events):
    return json.dumps({"destination": "Uxxx", "events": list(events)}).encode()


def ev(type_, ts, user="U1", eid="E1", **extra):
    e = {"type": type_, "timestamp": ts, "webhookEventId": eid, "source": {"type": "user", "userId": user}}
    e.update(extra)
    return e


def test_versions_sort_by_timestamp_then_arrival():
    a = make_version(100, 5, 0, 0)
    b = make_version(100, 5, 0, 1)     # later in the same body
    c = make_version(100, 6, 0, 0)     # later body
    d = make_version(101, 1, 0, 0)     # newer timestamp, earlier arrival
    assert a < b < c < d
    assert make_version(100, 5, 1, 0) > make_version(100, 5, 0, 9)  # same ms, later stream seq
    assert version_timestamp(d) == 101


def test_versions_are_fixed_width_even_for_odd_timestamps():
    assert len(make_version(-5, 1, 0, 0)) == len(make_version(10**20, 1, 0, 0)) == 36


def test_parse_body_maps_follow_unfollow_and_keeps_others():
    events = parse_body(body(ev("follow", 1, eid="a"), ev("unfollow", 2, eid="b"), ev("message", 3, eid="c"),
                             {"type": "brandNewType", "timestamp": 4}), "1700000000000-3")
    assert [e.state for e in events] == [SUBSCRIBED, UNSUBSCRIBED, None, None]
    assert [e.event_id for e in events] == ["a", "b", "c", None]
    assert events[3].user_id is None
    assert events[0].version < events[1].version


def test_group_source_without_user_has_no_transition():
    e = {"type": "follow", "timestamp": 1, "source": {"type": "group", "groupId": "C1"}}
    assert parse_body(body(e), "1-0")[0].state is None


@pytest.mark.parametrize("raw", [b"\xff", b"[]", b'{"events": 3}', b'{"events": [1]}'])
def test_bad_bodies_raise(raw):
    with pytest.raises(InvalidWebhook):
        parse_body(raw, "1-0")


def test_a_future_timestamp_counts_as_the_time_the_body_was_stored():
    future, past = parse_body(body(ev("follow", 5_000, eid="a"), ev("unfollow", 900, eid="b")), "1000-0")
    assert version_timestamp(future.version) == 1000 and future.timestamp == 5_000
    assert version_timestamp(past.version) == 900
    later = parse_body(body(ev("unfollow", 1000, eid="c")), "1000-1")[0]  # same time, later arrival
    assert later.version > future.version


@pytest.mark.parametrize("raw", [
    b'{"destination":"U","events":[{"type":"follow","timestamp":1,"source":{"userId":"U\\ud800"}}]}',
    body(ev("follow", 10**13)),
    body(ev("follow", -1)),
    body(ev("follow", 1, user="U" * 65)),
    body(ev("follow", 1, eid="e" * 129)),
    b'{"events":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
])
def test_bodies_the_ingress_refuses_raise(raw):
    with pytest.raises(InvalidWebhook):
        parse_body(raw, "1-0")
