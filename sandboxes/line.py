"""A LINE Messaging API stand-in: followers, bot info and the webhook-endpoint calls.

Endpoints (bearer auth with the access token on each; a wrong token is ``401``):

- ``GET /v2/bot/followers/ids``, ``GET /v2/bot/info``;
- ``GET /v2/bot/channel/webhook/endpoint`` → ``{"endpoint": …, "active": …}``
  (no URL on file: ``{"endpoint": "", "active": false}``; LINE does not document
  that case, so ``linesync doctor`` also takes a ``404`` to mean "not set");
- ``PUT /v2/bot/channel/webhook/endpoint`` with ``{"endpoint": "https://…"}``
  sets it (``http://`` is accepted too, for local ingresses; LINE itself takes HTTPS only);
- ``POST /v2/bot/message/push`` with ``{"to": "U…", "messages": [1-5 message objects]}``
  (what a Braze webhook campaign calls in a workspace without Braze's LINE channel,
  docs/braze-without-line-channel.md): ``200 {"sentMessages": […]}``, ``400`` for a
  malformed body, ``409`` for an ``X-Line-Retry-Key`` already accepted; kept for
  tests as ``GET /_sandbox/pushes`` (like LINE, a push to someone who is not a
  follower is accepted too: the sandbox marks it ``"follower": false``);
- ``POST /v2/bot/channel/webhook/test`` with ``{"endpoint": …}`` (optional; default
  the URL on file) really POSTs ``{"destination": <bot user id>, "events": []}``
  there, signed (``X-Line-Signature``) with the sandbox's channel secret, and
  answers like LINE: ``{"success", "timestamp", "statusCode", "reason", "detail"}``
  (``reason`` ``OK`` / ``ERROR_STATUS_CODE`` / ``COULD_NOT_CONNECT`` /
  ``REQUEST_TIMEOUT``; ``statusCode`` ``0`` when no answer came).

Followers are a count of generated ids (``follower_id(i)``) or an explicit list;
paging tokens are signed and expire (sandboxes/line_followers.py).

The sandbox is put together from one module per concept:

    line.py             LineSandbox: state, stats, reset, request dispatch
    line_followers.py   /v2/bot/followers/ids, its paging tokens, the follower list
    line_webhook.py     the webhook URL on file and the signed test delivery
    line_bot.py         /v2/bot/message/push, /v2/bot/info
    line_faults.py      the injected faults and their controls
    line_admin.py       the /_sandbox/* control endpoints

Everything is guarded by one lock; injected latency, the followers page time
and the test delivery happen outside it.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from sandboxes.line_admin import AdminApi
from sandboxes.line_bot import BOT_INFO, BOT_USER_ID, MAX_PUSH_MESSAGES, MAX_TEXT_LENGTH, PUSH, BotApi
from sandboxes.line_faults import FaultControls, LineFaults
from sandboxes.line_followers import (
    DEFAULT_TOKEN_TTL_SECONDS, FOLLOWERS, FORBIDDEN, INSIGHT_FOLLOWERS, INVALID_START, MAX_PAGE_SIZE, FollowersApi,
    InvalidToken, _Followers, follower_id,
)
from sandboxes.line_webhook import (
    DEFAULT_CHANNEL_SECRET, MAX_ENDPOINT_LENGTH, WEBHOOK_ENDPOINT, WEBHOOK_NOT_SET, WEBHOOK_TEST,
    WEBHOOK_TIMEOUT_SECONDS, WebhookApi, _endpoint_problem, deliver_test_webhook,
)
from sandboxes.server import Request, Response, Sandbox, json_response, sleep_ms

__all__ = [
    "AUTH_FAILED", "BOT_INFO", "BOT_USER_ID", "DEFAULT_ACCESS_TOKEN", "DEFAULT_CHANNEL_SECRET",
    "DEFAULT_TOKEN_TTL_SECONDS", "FOLLOWERS", "FORBIDDEN", "INSIGHT_FOLLOWERS", "INVALID_START", "MAX_ENDPOINT_LENGTH",
    "MAX_PAGE_SIZE", "MAX_PUSH_MESSAGES", "MAX_TEXT_LENGTH", "PUSH", "WEBHOOK_ENDPOINT", "WEBHOOK_NOT_SET",
    "WEBHOOK_TEST", "WEBHOOK_TIMEOUT_SECONDS", "InvalidToken", "LineFaults", "LineSandbox",
    "deliver_test_webhook", "follower_id",
]

DEFAULT_ACCESS_TOKEN = "sandbox-token"
# path -> the methods it answers.
_API = {FOLLOWERS: ("GET",), INSIGHT_FOLLOWERS: ("GET",), BOT_INFO: ("GET",), WEBHOOK_ENDPOINT: ("GET", "PUT"), WEBHOOK_TEST: ("POST",), PUSH: ("POST",)}

AUTH_FAILED = "Authentication failed. Confirm that the access token in the authorization header is valid."


class LineSandbox(FollowersApi, WebhookApi, BotApi, FaultControls, AdminApi, Sandbox):
    """An in-memory LINE Messaging API. ``start()`` serves it; ``url`` is its base URL."""

    def __init__(
        self,
        *,
        access_token: str = DEFAULT_ACCESS_TOKEN,
        followers: int | list[str] = 0,
        token_ttl_seconds: float = DEFAULT_TOKEN_TTL_SECONDS,
        channel_secret: str = DEFAULT_CHANNEL_SECRET,
        webhook_endpoint: str | None = None,
        webhook_timeout: float = WEBHOOK_TIMEOUT_SECONDS,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Any = time.time,
    ):
        super().__init__(host=host, port=port, clock=clock)
        self.access_token = access_token
        self.token_ttl_seconds = token_ttl_seconds
        self.channel_secret = channel_secret
        self.webhook_timeout = webhook_timeout
        if webhook_endpoint is not None and _endpoint_problem(webhook_endpoint):
            raise ValueError(f"webhook_endpoint: {_endpoint_problem(webhook_endpoint)}")
        self._webhook_endpoint = webhook_endpoint or ""
        self._secret = os.urandom(16)
        self._followers = _Followers(followers)
        self._faults = LineFaults()
        self._reset_stats()

    # ------------------------------------------------------------------ in-process API

    def _reset_stats(self) -> None:
        self._by_status: dict[str, dict[str, int]] = {}
        self._pages = 0
        self._ids_served = 0
        self._pushes: list[dict[str, Any]] = []
        self._retry_keys: set[str] = set()

    def reset(self) -> None:
        """Forget counters and faults (the follower list stays)."""
        with self._lock:
            self._reset_stats()
            self._faults = LineFaults()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {path: dict(c) for path, c in self._by_status.items()},
                "pages_served": self._pages,
                "ids_served": self._ids_served,
                "followers": self._followers.count(),
            }

    # ------------------------------------------------------------------ HTTP

    def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path.startswith("/_sandbox/"):
            return self._admin(request, path)
        if path not in _API:
            return self._reply(path, 404, {"message": "Not found"}, count=False)
        if request.method not in _API[path]:
            return self._reply(path, 405, {"message": "Method not allowed"})
        arrived = time.monotonic()
        with self._lock:
            latency = self._faults.latency_ms
        sleep_ms(latency)
        with self._lock:
            if request.bearer() != self.access_token:
                return self._reply(path, 401, {"message": AUTH_FAILED})
            if path == BOT_INFO:
                return self._reply(path, 200, self._bot_info())
            if path == INSIGHT_FOLLOWERS:
                return self._insight_followers(request)
            if path == FOLLOWERS:
                page, page_time = self._followers_page(request), self._faults.page_time_ms
        if path == FOLLOWERS:
            sleep_ms(page_time - (time.monotonic() - arrived) * 1000)
            return page
        with self._lock:
            if path == PUSH:
                return self._push(request)
        if path == WEBHOOK_ENDPOINT:
            return self._webhook_endpoint_call(request)
        return self._webhook_test(request)  # outside the lock: it waits for the endpoint's answer

    def _reply(self, path: str, status: int, payload: Any, *, count: bool = True) -> Response:
        if count:
            with self._lock:
                counts = self._by_status.setdefault(path, {})
                counts[str(status)] = counts.get(str(status), 0) + 1
        return json_response(status, payload, {"X-Line-Request-Id": str(uuid.uuid4())})
