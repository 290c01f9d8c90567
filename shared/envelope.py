"""LINE's webhook envelope: structure and types only.

The ingress accepts a signed body when it is ``{destination: str, events: [..]}``
and every event is an object with ``type`` (str) and ``timestamp`` (int, not bool).
Everything else is let through untouched: unknown event types, unknown fields
and unusual id formats are accepted, because LINE adds them over time and the
workers decide what to do with each event.
"""

from __future__ import annotations

import json
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
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidWebhook("body is not JSON (nested too deeply)") from None
    except json.JSONDecodeError as e:
        raise InvalidWebhook(f"body is not JSON ({e.msg} at char {e.pos})") from None
    except ValueError as e:  # NaN/Infinity, integers past Python's digit limit
        raise InvalidWebhook(f"body is not JSON ({str(e).split(':')[0][:120]})") from None


def validate_envelope(raw: bytes) -> dict[str, Any]:
    """Parse and check a webhook body; return the envelope as a dict.

    Raises InvalidWebhook with a short reason (e.g. ``events.2.timestamp: Not a
    valid integer.``). The reason never contains the body.
    """
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidWebhook(f"body is a JSON {_json_type(data)}, not an object")
    if _plainly_valid(data):
        return data
    try:
        return _ENVELOPE.load(data)
    except ValidationError as e:
        raise InvalidWebhook(_first_error(e.messages)) from None


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
