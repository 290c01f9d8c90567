"""LINE's webhook envelope: structure and types, and the bounds the pipeline relies on.

The ingress accepts a signed body when it is ``{destination: str, events: [..]}``
and every event is an object with ``type`` (str) and ``timestamp`` (int, not bool).
Everything else is let through untouched: unknown event types, unknown fields
and unusual id formats are accepted, because LINE adds them over time and the
workers decide what to do with each event.

A few bounds keep one body from breaking the batch it is processed in
(:func:`bounds_problem`, also applied by the consumer, shared/events.py):

- the JSON is strict UTF-8: no lone surrogate escape such as ``"\\ud800"``,
  which Python's ``json`` accepts but no UTF-8 encoder (redis-py, Redis's
  cjson, Braze) takes;
- ``timestamp`` is epoch milliseconds in ``[0, MAX_TIMESTAMP]``;
- ``source.userId`` and ``webhookEventId``, when strings, are at most
  ``MAX_USER_ID`` / ``MAX_EVENT_ID`` characters: they become Redis hash
  fields, keys and Braze aliases. These are bounds on size, far above LINE's
  formats, not checks of the format.
"""

from __future__ import annotations

import json
import re
from typing import Any

from marshmallow import INCLUDE, Schema, ValidationError, fields

from shared.errors import InvalidWebhook


class StrictInteger(fields.Integer):
    """A JSON integer: no strings, floats or booleans (``True`` is an ``int`` in Python)."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class EventSchema(Schema):
    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    timestamp = StrictInteger(required=True)


class EnvelopeSchema(Schema):
    class Meta:
        unknown = INCLUDE

    destination = fields.String(required=True)
    events = fields.List(fields.Nested(EventSchema), required=True)


# Schemas hold no per-call state: build them once.
_ENVELOPE = EnvelopeSchema()

# Latest timestamp (ms) kept: the 13 digits of a version's timestamp (shared/events.py),
# year 2286; datetime formats it (a forwarded event's ``time``).
MAX_TIMESTAMP = 10**13 - 1
# LINE user ids are 33 characters ("U" + 32 hex digits); twice that leaves room for a
# new format while keeping state-hash fields and Braze aliases short.
MAX_USER_ID = 64
# webhookEventIds are 26-character ULIDs; 128 leaves room for any id format LINE
# might adopt while keeping the dedupe key ({P}:seen:<id>) small.
MAX_EVENT_ID = 128


# Any surrogate escape, paired or not (\uD800-\uDFFF); a quick first look.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and LINE) does not.
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """Strict UTF-8 JSON, or InvalidWebhook with a short reason."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhook("body is not valid UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidWebhook("body is not JSON (nested too deeply)") from None
    except json.JSONDecodeError as e:
        raise InvalidWebhook(f"body is not JSON ({e.msg} at char {e.pos})") from None
    except ValueError as e:  # NaN/Infinity, integers past Python's digit limit
        raise InvalidWebhook(f"body is not JSON ({str(e).split(':')[0][:120]})") from None
    if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(data):
        raise InvalidWebhook("body is not JSON (a lone surrogate escape, not valid UTF-8)")
    return data


def _lone_surrogate(data: Any) -> bool:
    """Whether a string in ``data`` holds an unpaired surrogate (``json`` decodes ``"\\ud800"`` to one).

    Asked only of bodies with a surrogate escape (:data:`_SURROGATE_ESCAPE`; rare:
    LINE sends UTF-8), so other bodies pay one regex scan; this re-encodes the
    document in C.
    """
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except RecursionError:  # as deep as json.loads allows: too deep to look at, refuse it too
        return True
    return False


def validate_envelope(raw: bytes) -> dict[str, Any]:
    """Parse and check a webhook body; return the envelope as a dict.

    Raises InvalidWebhook with a short reason (e.g. ``events.2.timestamp: Not a
    valid integer.``). The reason never contains the body.
    """
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidWebhook(f"body is a JSON {_json_type(data)}, not an object")
    if not _plainly_valid(data):
        try:
            data = _ENVELOPE.load(data)
        except ValidationError as e:
            raise InvalidWebhook(_first_error(e.messages)) from None
    problem = bounds_problem(data["events"])
    if problem:
        raise InvalidWebhook(problem)
    return data


def bounds_problem(events: list[Any]) -> str | None:
    """Why an event is out of the bounds above (``events.3.timestamp: ...``), or None.

    One pass of dict lookups per event. Items that are not objects, and fields
    of other types, are left to the structure check.
    """
    for i, event in enumerate(events):
        if type(event) is not dict:
            continue
        ts = event.get("timestamp")
        if type(ts) is int and not 0 <= ts <= MAX_TIMESTAMP:
            return f"events.{i}.timestamp: out of range (0 to {MAX_TIMESTAMP} ms)"
        source = event.get("source")
        if type(source) is dict:
            user = source.get("userId")
            if type(user) is str and len(user) > MAX_USER_ID:
                return f"events.{i}.source.userId: longer than {MAX_USER_ID} characters"
        event_id = event.get("webhookEventId")
        if type(event_id) is str and len(event_id) > MAX_EVENT_ID:
            return f"events.{i}.webhookEventId: longer than {MAX_EVENT_ID} characters"
    return None


def _plainly_valid(data: dict[str, Any]) -> bool:
    """A quick check that only ever says yes when the schema would (tests hold it to that).

    The ingress runs this on every request; marshmallow costs several times more
    and is only asked when this says no, to decide and to word the reason.
    ``type(x) is`` is exact because ``json.loads`` builds only plain types.
    """
    if type(data.get("destination")) is not str:
        return False
    events = data.get("events")
    if type(events) is not list:
        return False
    for event in events:
        if type(event) is not dict or type(event.get("type")) is not str or type(event.get("timestamp")) is not int:
            return False
    return True


def _first_error(messages: Any, path: tuple[str, ...] = ()) -> str:
    """``{'events': {3: {'type': ['Missing data...']}}}`` -> ``events.3.type: Missing data...``."""
    if isinstance(messages, dict) and messages:
        key = sorted(messages, key=str)[0]
        # marshmallow files "not an object" under _schema; the path says where enough.
        step = () if key == "_schema" else (str(key),)
        return _first_error(messages[key], path + step)
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], path)
    where = ".".join(path) or "body"
    return f"{where}: {messages}"[:200]


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
