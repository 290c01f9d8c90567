"""The LINE sandbox's push API: what a Braze webhook campaign calls without Braze's LINE channel."""

from __future__ import annotations

import pytest

from sandboxes.line import follower_id
from tests.sandboxes.conftest import LINE_TOKEN

AUTH = {"Authorization": f"Bearer {LINE_TOKEN}"}


def push(http, line, body, headers=AUTH):
    return http.post(f"{line.url}/v2/bot/message/push", json=body, headers=headers)


def test_a_push_is_accepted_and_kept(http, line):
    body = {"to": follower_id(3), "messages": [{"type": "text", "text": "hi"}, {"type": "sticker",
                                                                               "packageId": "1", "stickerId": "1"}]}
    r = push(http, line, body)
    assert r.status_code == 200 and len(r.json()["sentMessages"]) == 2
    stranger = push(http, line, {"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "hi"}]})
    assert stranger.status_code == 200  # LINE accepts it too; it is just not delivered
    got = http.get(f"{line.url}/_sandbox/pushes").json()["pushes"]
    assert [(p["to"], p["follower"]) for p in got] == [(follower_id(3), True), ("U" + "0" * 32, False)]
    assert got[0]["messages"] == body["messages"]


@pytest.mark.parametrize("body, prop", [
    ({"messages": [{"type": "text", "text": "x"}]}, "to"), ({"to": "", "messages": []}, "to"),
    ({"to": "Ux", "messages": []}, "messages"), ({"to": "Ux", "messages": [{"type": "text", "text": "x"}] * 6}, "messages"),
    ({"to": "Ux", "messages": [{"text": "x"}]}, "messages[0].type"),
    ({"to": "Ux", "messages": [{"type": "text", "text": ""}]}, "messages[0].text"),
])
def test_malformed_pushes_are_400(http, line, body, prop):
    r = push(http, line, body)
    assert r.status_code == 400 and r.json()["details"][0]["property"] == prop
    assert line.pushes() == []


def test_auth_and_retry_key(http, line):
    body = {"to": follower_id(1), "messages": [{"type": "text", "text": "once"}]}
    assert push(http, line, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    key = {**AUTH, "X-Line-Retry-Key": "123e4567-e89b-12d3-a456-426614174000"}
    assert push(http, line, body, headers=key).status_code == 200
    assert push(http, line, body, headers=key).status_code == 409  # a retried push is not sent twice
    assert len(line.pushes()) == 1
