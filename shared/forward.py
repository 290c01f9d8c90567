"""Inbound LINE events as Braze custom events (optional, LINESYNC_FORWARD_EVENTS). Pure."""

from __future__ import annotations

import datetime as dt
import json

from shared.events import Event
from shared.payload import ALIAS_LABEL

FORWARDABLE = ("message", "postback", "follow", "unfollow")


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def custom_event(ev: Event) -> dict | None:
    """The /users/track ``events`` object for a LINE event, or None if it has none."""
    if not ev.user_id:
        return None
    raw = ev.raw
    if ev.type == "message":
        msg = raw.get("message") if isinstance(raw.get("message"), dict) else {}
        name, props = "line_message_received", {"message_type": str(msg.get("type", ""))}
        if isinstance(msg.get("text"), str):
            props["text"] = msg["text"][:1000]
    elif ev.type == "postback":
        pb = raw.get("postback") if isinstance(raw.get("postback"), dict) else {}
        name, props = "line_postback", {"data": str(pb.get("data", ""))[:1000]}
    elif ev.type == "follow":
        fl = raw.get("follow") if isinstance(raw.get("follow"), dict) else {}
        name, props = "line_follow", {"is_unblocked": bool(fl.get("isUnblocked", False))}
    elif ev.type == "unfollow":
        name, props = "line_unfollow", {}
    else:
        return None
    return {
        "user_alias": {"alias_name": ev.user_id, "alias_label": ALIAS_LABEL},
        "_update_existing_only": False,
        "name": name,
        "time": _iso(ev.timestamp),
        "properties": props,
    }


def encode(obj: dict, now_ms: int) -> str:
    """JSON for the outbox event list; ``q`` (enqueue time) drives the flush delay and is stripped before sending."""
    return json.dumps({**obj, "q": now_ms}, separators=(",", ":"))
