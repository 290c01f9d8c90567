"""The LINE sandbox's bot endpoints: ``POST /v2/bot/message/push`` and ``GET /v2/bot/info``.

A push (what a Braze webhook campaign calls in a workspace without Braze's LINE
channel, docs/braze-without-line-channel.md) takes ``{"to": "U…", "messages":
[1-5 message objects]}``: ``200 {"sentMessages": […]}``, ``400`` for a
malformed body, ``409`` for an ``X-Line-Retry-Key`` already accepted. Accepted
pushes are kept for tests (like LINE, a push to someone who is not a follower
is accepted too: the sandbox marks it ``"follower": false``).

A mixin of :class:`sandboxes.line.LineSandbox`, its push called with the lock held.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from sandboxes.line_followers import _Followers
from sandboxes.server import Request, Response

BOT_INFO = "/v2/bot/info"
PUSH = "/v2/bot/message/push"
# LINE takes 1 to 5 message objects per push, a text message up to 5,000 characters.
MAX_PUSH_MESSAGES = 5
MAX_TEXT_LENGTH = 5000
BOT_USER_ID = "U" + hashlib.md5(b"linesync-sandbox-bot").hexdigest()


class BotApi:
    """Push and bot info (uses the sandbox's lock, followers, push log, retry keys and ``_reply``)."""

    _lock: threading.RLock
    _followers: _Followers
    _pushes: list[dict[str, Any]]
    _retry_keys: set[str]

    def pushes(self) -> list[dict[str, Any]]:
        """Accepted pushes, oldest first: ``{"to", "messages", "retry_key", "follower"}``."""
        with self._lock:
            return [dict(p) for p in self._pushes]

    # ------------------------------------------------------------------ HTTP

    def _push(self, request: Request) -> Response:
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        problem = _push_problem(body)
        if problem:
            return self._reply(PUSH, 400, {"message": "The request body has 1 error(s)", "details": [problem]})
        key = request.headers.get("x-line-retry-key")
        if key and key in self._retry_keys:
            return self._reply(PUSH, 409, {"message": "The retry key is already accepted"})
        if key:
            self._retry_keys.add(key)
        to = body["to"]
        self._pushes.append({"to": to, "messages": body["messages"], "retry_key": key,
                             "follower": any(u == to for u in self._followers)})
        sent = [{"id": str(len(self._pushes) * 10 + i)} for i in range(len(body["messages"]))]
        return self._reply(PUSH, 200, {"sentMessages": sent})

    def _bot_info(self) -> dict[str, Any]:
        return {
            "userId": BOT_USER_ID,
            "basicId": "@abc",
            "displayName": "Sandbox OA",
            "chatMode": "chat",
            "markAsReadMode": "manual",
        }


def _push_problem(body: Any) -> dict[str, str] | None:
    """What LINE would reject in a push body (the first problem), or None."""
    if not isinstance(body, dict):
        return {"message": "must be a JSON object", "property": ""}
    to = body.get("to")
    if not isinstance(to, str) or not to:
        return {"message": "must be specified", "property": "to"}
    messages = body.get("messages")
    if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_PUSH_MESSAGES:
        return {"message": f"size must be between 1 and {MAX_PUSH_MESSAGES}", "property": "messages"}
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("type"), str):
            return {"message": "must be specified", "property": f"messages[{i}].type"}
        text = m.get("text")
        if m["type"] == "text" and (not isinstance(text, str) or not text or len(text) > MAX_TEXT_LENGTH):
            return {"message": f"length must be between 1 and {MAX_TEXT_LENGTH}", "property": f"messages[{i}].text"}
    return None
