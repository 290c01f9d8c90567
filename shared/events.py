"""From a raw webhook body to the few facts the pipeline acts on. Pure: no I/O.

Each event gets a *version*: a fixed-width string that sorts like
``(timestamp, arrival)``, where arrival is the body's stream id and the event's
position in the body. Comparing versions as strings gives the contract's order (docs/reference.md, Guarantees):
newest timestamp wins, ties go to the later arrival.

The timestamp in a version is the event's *effective* time
(:func:`effective_timestamp`): its ``timestamp``, but never later than the time
the ingress stored the body, which is the milliseconds of its stream id
(Redis's clock, shared/webhook_queue.py). A signed event dated tomorrow would
otherwise win over every real event until tomorrow (docs/reference.md, the ingress).

A body the ingress would refuse (shared/envelope.py: not strict UTF-8 JSON,
out of bounds) raises InvalidWebhook here too, so one such body already in the
stream is dead-lettered alone instead of failing the batch it is read in.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.envelope import MAX_TIMESTAMP, bounds_problem, parse_json
from shared.errors import InvalidWebhook

SUBSCRIBED = "S"
UNSUBSCRIBED = "U"
STATE_NAMES = {SUBSCRIBED: "subscribed", UNSUBSCRIBED: "unsubscribed"}
TRANSITIONS = {"follow": SUBSCRIBED, "unfollow": UNSUBSCRIBED}

_MAX_TS = MAX_TIMESTAMP  # 13 digits


@dataclass(frozen=True)
class Event:
    type: str
    user_id: str | None
    event_id: str | None
    timestamp: int             # as LINE sent it; the version holds the effective time
    version: str
    state: str | None          # S / U for follow / unfollow, else None
    raw: dict


def make_version(timestamp: int, arrival_ms: int, arrival_seq: int, index: int) -> str:
    """``(timestamp, arrival)`` as a string that sorts the same way (36 chars)."""
    ts = min(max(int(timestamp), 0), _MAX_TS)
    return f"{ts:013d}{min(arrival_ms, _MAX_TS):013d}{arrival_seq % 10**6:06d}{index % 10**4:04d}"


def effective_timestamp(timestamp: int, stored_ms: int) -> int:
    """The time an event counts as for ordering: its timestamp, at most when it was stored."""
    return min(timestamp, stored_ms)


def version_timestamp(version: str) -> int:
    return int(version[:13])


def parse_stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def parse_body(body: bytes, entry_id: str) -> list[Event]:
    """Events of one stored body, in order. Raises InvalidWebhook for a body that isn't an envelope."""
    doc = parse_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        raise InvalidWebhook("not a LINE webhook envelope")
    problem = bounds_problem(doc["events"])
    if problem:
        raise InvalidWebhook(problem)
    ms, seq = parse_stream_id(entry_id)
    out = []
    for i, ev in enumerate(doc["events"]):
        if not isinstance(ev, dict):
            raise InvalidWebhook(f"event {i} is not an object")
        etype = ev.get("type") if isinstance(ev.get("type"), str) else "unknown"
        ts = ev.get("timestamp")
        ts = ts if isinstance(ts, int) and not isinstance(ts, bool) else 0
        src = ev.get("source") if isinstance(ev.get("source"), dict) else {}
        uid = src.get("userId") if isinstance(src.get("userId"), str) and src.get("userId") else None
        eid = ev.get("webhookEventId") if isinstance(ev.get("webhookEventId"), str) and ev.get("webhookEventId") else None
        out.append(Event(
            type=etype, user_id=uid, event_id=eid, timestamp=ts,
            version=make_version(effective_timestamp(ts, ms), ms, seq, i),
            state=TRANSITIONS.get(etype) if uid else None,
            raw=ev,
        ))
    return out
