"""The envelope check: structure and types only; everything unknown is let through."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st
from marshmallow import ValidationError

from linesync.commands.send_test_webhook import follow_event, unfollow_event, webhook_body
from shared.envelope import (MAX_EVENT_ID, MAX_TIMESTAMP, MAX_USER_ID, EnvelopeSchema, _plainly_valid,
                             bounds_problem, validate_envelope)
from shared.errors import InvalidWebhook


def env(events, **extra) -> bytes:
    return json.dumps({"destination": "U" + "0" * 32, "events": events, **extra}).encode()


def test_real_line_follow_and_unfollow_body():
    body = webhook_body([follow_event("U" + "1" * 32, 1), unfollow_event("U" + "1" * 32, 2)])
    out = validate_envelope(body)
    assert [e["type"] for e in out["events"]] == ["follow", "unfollow"]
    assert out["events"][0]["follow"] == {"isUnblocked": False}


def test_empty_events_is_valid():
    assert validate_envelope(env([]))["events"] == []


def test_unknown_event_types_and_fields_are_kept():
    body = env(
        [{"type": "somethingNew", "timestamp": 5, "extra": {"deep": [1]}, "source": {"userId": "?"}}],
        newField=True,
    )
    out = validate_envelope(body)
    assert out["newField"] is True
    assert out["events"][0] == {"type": "somethingNew", "timestamp": 5, "extra": {"deep": [1]},
                                "source": {"userId": "?"}}


def test_unusual_ids_and_destination_formats_are_accepted():
    validate_envelope(json.dumps({"destination": "", "events": [
        {"type": "follow", "timestamp": 0, "source": {"type": "group", "groupId": "C-weird"},
         "webhookEventId": "not-a-ulid"}]}).encode())


def test_timestamps_and_ids_at_their_bounds_are_accepted():
    validate_envelope(env([
        {"type": "x", "timestamp": 0},
        {"type": "x", "timestamp": MAX_TIMESTAMP, "webhookEventId": "e" * MAX_EVENT_ID,
         "source": {"type": "user", "userId": "U" * MAX_USER_ID}},
        {"type": "x", "timestamp": 1, "webhookEventId": 7, "source": {"userId": ["not", "a", "string"]}},
    ]))


def test_surrogate_pairs_and_escaped_backslashes_are_not_lone_surrogates():
    validate_envelope(b'{"destination":"U","events":[{"type":"x","timestamp":1,'
                      b'"a":"\\ud83d\\ude00","b":"\\\\ud800","c":"\\uD83D\\uDE00"}]}')


@pytest.mark.parametrize(
    "event, reason",
    [
        ({"type": "x", "timestamp": -1}, "events.1.timestamp: out of range"),
        ({"type": "x", "timestamp": MAX_TIMESTAMP + 1}, "events.1.timestamp: out of range"),
        ({"type": "x", "timestamp": 2**63}, "events.1.timestamp: out of range"),
        ({"type": "x", "timestamp": 1, "source": {"userId": "U" * (MAX_USER_ID + 1)}},
         "events.1.source.userId: longer than 64"),
        ({"type": "x", "timestamp": 1, "webhookEventId": "e" * (MAX_EVENT_ID + 1)},
         "events.1.webhookEventId: longer than 128"),
    ],
)
def test_out_of_bounds_events_are_rejected(event, reason):  # the second event: its index is named
    with pytest.raises(InvalidWebhook) as e:
        validate_envelope(env([{"type": "ok", "timestamp": 1}, event]))
    assert reason in str(e.value)


@pytest.mark.parametrize("escape", [b"\\ud800", b"\\uDFFF", b"\\ud83d", b"\\ude00\\ud83d", b"x\\\\\\udc00"])
def test_lone_surrogate_escapes_are_rejected(escape):
    body = b'{"destination":"U","events":[{"type":"x","timestamp":1,"source":{"userId":"U' + escape + b'"}}]}'
    with pytest.raises(InvalidWebhook) as e:
        validate_envelope(body)
    assert "lone surrogate" in str(e.value)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"\xff\xfe{}", "UTF-8"),
        ('{"destination":"U","events":[]}'.encode("utf-16"), "UTF-8"),
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b'{"destination":"U","events":[]} trailing', "not JSON"),
        (b'{"destination":"U","events":[{"type":"x","timestamp":Infinity}]}', "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b"1" * 5000, "not JSON"),
        (b"[]", "array, not an object"),
        (b"null", "null, not an object"),
        (b"42", "number, not an object"),
        (b'"x"', "string, not an object"),
        (b"true", "boolean, not an object"),
        (b'{"destination":"U"}', "events: Missing data"),
        (b'{"events":[]}', "destination: Missing data"),
        (b'{"destination":null,"events":[]}', "destination"),
        (b'{"destination":["U"],"events":[]}', "destination"),
        (b'{"destination":"U","events":null}', "events"),
        (b'{"destination":"U","events":{}}', "events: Not a valid list"),
        (b'{"destination":"U","events":[[]]}', "events.0"),
        (b'{"destination":"U","events":[{"type":"x","timestamp":1}, 3]}', "events.1"),
        (b'{"destination":"U","events":[{"timestamp":1}]}', "events.0.type"),
        (b'{"destination":"U","events":[{"type":null,"timestamp":1}]}', "events.0.type"),
        (b'{"destination":"U","events":[{"type":["follow"],"timestamp":1}]}', "events.0.type"),
        (b'{"destination":"U","events":[{"type":"x"}]}', "events.0.timestamp"),
        (b'{"destination":"U","events":[{"type":"x","timestamp":"1"}]}', "events.0.timestamp"),
        (b'{"destination":"U","events":[{"type":"x","timestamp":true}]}', "events.0.timestamp"),
        (b'{"destination":"U","events":[{"type":"x","timestamp":false}]}', "events.0.timestamp"),
        (b'{"destination":"U","events":[{"type":"x","timestamp":1.0}]}', "events.0.timestamp"),
        (b'{"destination":"U","events":[{"type":"x","timestamp":null}]}', "events.0.timestamp"),
    ],
)
def test_rejected_with_a_short_reason(body, reason):
    with pytest.raises(InvalidWebhook) as e:
        validate_envelope(body)
    assert reason in str(e.value)
    assert len(str(e.value)) <= 200


def test_reason_never_quotes_the_body():
    body = b'{"destination":"U","events":[{"type":"x","timestamp":"SECRET-LOOKING-VALUE"}]}'
    with pytest.raises(InvalidWebhook) as e:
        validate_envelope(body)
    assert "SECRET-LOOKING-VALUE" not in str(e.value)


# The quick check in front of the schema must never accept what the schema rejects.
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(["type", "timestamp", "x"]), c, max_size=3),
    max_leaves=10,
)
_event = st.fixed_dictionaries({}, optional={"type": _json | st.text(max_size=5), "timestamp": _json | st.integers(),
                                             "source": _json})
_envelope = st.fixed_dictionaries({}, optional={"destination": _json | st.text(max_size=5),
                                                "events": st.lists(_event | _json, max_size=3) | _json,
                                                "other": _json})


@settings(max_examples=500, deadline=None)
@given(_envelope)
def test_quick_check_agrees_with_the_schema(data):
    try:
        EnvelopeSchema().load(data)
        schema_ok = True
    except ValidationError:
        schema_ok = False
    assert _plainly_valid(data) == schema_ok
    raw = json.dumps(data).encode()
    if schema_ok and bounds_problem(data["events"]) is None:
        assert validate_envelope(raw) == json.loads(raw)
    else:
        with pytest.raises(InvalidWebhook):
            validate_envelope(raw)
