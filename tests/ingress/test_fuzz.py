"""Arbitrary bytes and headers at /line/events: no 5xx but 503, no unsigned body stored."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from shared.signature import sign
from tests.conftest import TEST_SECRET

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# Bodies shaped like the envelope, with random parts, so the schema is exercised too.
envelope_like = st.fixed_dictionaries(
    {},
    optional={
        "destination": json_values,
        "events": st.lists(
            st.fixed_dictionaries({}, optional={"type": json_values, "timestamp": json_values}) | json_values,
            max_size=4,
        )
        | json_values,
    },
).map(lambda d: json.dumps(d).encode())
bodies = st.binary(max_size=300) | envelope_like | json_values.map(lambda v: json.dumps(v).encode())
header_names = st.sampled_from(["X-Line-Signature", "x-line-signature", "X-LINE-SIGNATURE", "X-Other"])
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
FUZZ = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=bodies, name=header_names, value=header_values)
def test_unsigned_or_wrongly_signed_bodies_are_never_stored(client, r, keys, body, name, value):
    if value.strip() == sign(TEST_SECRET, body):
        return
    before = (r.xlen(keys.webhooks), r.xlen(keys.rejected))
    resp = client.post("/line/events", data=body, headers={name: value})
    assert resp.status_code == 401
    assert (r.xlen(keys.webhooks), r.xlen(keys.rejected)) == before


@FUZZ
@given(body=bodies, name=header_names.filter(lambda n: n != "X-Other"))
def test_signed_bodies_are_stored_or_kept_and_never_5xx(client, r, keys, body, name):
    before = (r.xlen(keys.webhooks), r.xlen(keys.rejected))
    resp = client.post("/line/events", data=body, headers={name: sign(TEST_SECRET, body)})
    assert resp.status_code in (200, 400)
    assert resp.is_json
    queued, rejected = r.xlen(keys.webhooks) - before[0], r.xlen(keys.rejected) - before[1]
    if resp.status_code == 400:
        assert (queued, rejected) == (0, 1)
        assert r.xrevrange(keys.rejected, count=1)[0][1][b"body"] == body
    elif queued:
        assert r.xrevrange(keys.webhooks, count=1)[0][1][b"body"] == body
    else:  # verify-only
        assert json.loads(body)["events"] == []


@FUZZ
@given(body=st.binary(max_size=200), headers=st.dictionaries(
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,20}\Z").filter(
        lambda n: n.lower() not in ("content-length", "transfer-encoding")),
    header_values, max_size=5))
def test_arbitrary_headers_never_5xx(client, r, keys, body, headers):
    before = r.xlen(keys.webhooks)
    resp = client.post("/line/events", data=body, headers=headers)
    assert resp.status_code < 500 or resp.status_code == 503
    if resp.status_code != 200:
        assert r.xlen(keys.webhooks) == before
