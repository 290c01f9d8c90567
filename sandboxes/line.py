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

Followers are either an explicit list or a count ``N``, meaning the ids
``follower_id(0) … follower_id(N-1)`` (``"U" + md5(str(i))``), generated per
page so a million followers cost no memory. ``add``/``remove`` changes are kept
as an appended list and a removed set, so positions never shift while a pass
is paging (a removed follower just leaves its page one id shorter).

Paging tokens are opaque: base64url of ``offset:page:issued_at`` plus an HMAC
under a per-instance secret, so they can't be forged, and they expire
``token_ttl_seconds`` after they were issued (``400 Invalid start param``).
Page index 0 is the request without ``start``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urlsplit

from sandboxes.server import (
    Request, Response, Sandbox, admin_body, json_response, reject_unknown, sleep_ms,
)
from shared.signature import sign

DEFAULT_ACCESS_TOKEN = "sandbox-token"
# Signs the test webhook (POST /v2/bot/channel/webhook/test); give the ingress's LINE_CHANNEL_SECRET.
DEFAULT_CHANNEL_SECRET = "sandbox-channel-secret"
# LINE gives a webhook this long to answer (s).
WEBHOOK_TIMEOUT_SECONDS = 2.0
# LINE's limit on a webhook URL's length.
MAX_ENDPOINT_LENGTH = 500
# LINE's documented maximum (and default) page size.
MAX_PAGE_SIZE = 1000
# A continuation token is valid this long after it is issued.
DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600
_SIG_BYTES = 12

FOLLOWERS = "/v2/bot/followers/ids"
BOT_INFO = "/v2/bot/info"
WEBHOOK_ENDPOINT = "/v2/bot/channel/webhook/endpoint"
WEBHOOK_TEST = "/v2/bot/channel/webhook/test"
PUSH = "/v2/bot/message/push"
# LINE takes 1 to 5 message objects per push, a text message up to 5,000 characters.
MAX_PUSH_MESSAGES = 5
MAX_TEXT_LENGTH = 5000
# path -> the methods it answers.
_API = {FOLLOWERS: ("GET",), BOT_INFO: ("GET",), WEBHOOK_ENDPOINT: ("GET", "PUT"), WEBHOOK_TEST: ("POST",), PUSH: ("POST",)}

AUTH_FAILED = "Authentication failed. Confirm that the access token in the authorization header is valid."
FORBIDDEN = "Access to this API is not available for your account"
INVALID_START = "Invalid start param"
WEBHOOK_NOT_SET = "The webhook endpoint is not set"
BOT_USER_ID = "U" + hashlib.md5(b"linesync-sandbox-bot").hexdigest()


def follower_id(i: int) -> str:
    """The ``i``-th generated follower id."""
    return "U" + hashlib.md5(str(i).encode()).hexdigest()


class _Followers:
    """The follower list as stable positions: base (generated or given) ids, then added ids."""

    def __init__(self, followers: int | list[str]):
        if isinstance(followers, bool) or not isinstance(followers, (int, list, tuple)):
            raise TypeError("followers must be a count or a list of user ids")
        if isinstance(followers, int):
            if followers < 0:
                raise ValueError("followers must not be negative")
            self._base_n, self._base_list = followers, None
        else:
            self._base_list = [str(u) for u in followers]
            self._base_n = len(self._base_list)
        self._base_set: set[str] | None = set(self._base_list) if self._base_list is not None else None
        self._added: list[str] = []
        self._added_set: set[str] = set()
        self._removed: set[str] = set()

    def _at(self, pos: int) -> str:
        if pos < self._base_n:
            return self._base_list[pos] if self._base_list is not None else follower_id(pos)
        return self._added[pos - self._base_n]

    @property
    def positions(self) -> int:
        return self._base_n + len(self._added)

    def count(self) -> int:
        return self.positions - len(self._removed)

    def page(self, offset: int, limit: int) -> tuple[list[str], int | None]:
        end = min(offset + limit, self.positions)
        ids = [self._at(p) for p in range(offset, end)]
        if self._removed:
            ids = [u for u in ids if u not in self._removed]
        return ids, (end if end < self.positions else None)

    def add(self, ids: list[str]) -> None:
        for u in ids:
            if u in self._removed:
                self._removed.discard(u)
            elif u not in self._added_set and not (self._base_set is not None and u in self._base_set):
                self._added.append(u)
                self._added_set.add(u)

    def remove(self, ids: list[str]) -> None:
        """Remove followers. With generated ids, an id not added later is assumed to be a base id."""
        for u in ids:
            known = u in self._added_set or (self._base_set is not None and u in self._base_set)
            if known or self._base_set is None:
                self._removed.add(u)

    def __iter__(self) -> Iterator[str]:
        for pos in range(self.positions):
            u = self._at(pos)
            if u not in self._removed:
                yield u


@dataclass
class LineFaults:
    """What the sandbox should get wrong. See :meth:`LineSandbox.set_faults`."""

    forbidden: bool = False
    fail_pages: dict[int, int] = field(default_factory=dict)  # page index -> 500s left
    expire_tokens: bool = False
    latency_ms: float = 0.0
    page_time_ms: float = 0.0       # a followers page is answered this long after its request arrived (work included)
    webhook_unset: bool = False     # LINE has no webhook URL on file (whatever was PUT)
    webhook_inactive: bool = False  # "Use webhook" is off: the URL is kept, LINE sends nothing

    def to_json(self) -> dict[str, Any]:
        return {
            "forbidden": self.forbidden,
            "fail_pages": {str(k): v for k, v in sorted(self.fail_pages.items())},
            "expire_tokens": self.expire_tokens,
            "latency_ms": self.latency_ms,
            "page_time_ms": self.page_time_ms,
            "webhook_unset": self.webhook_unset,
            "webhook_inactive": self.webhook_inactive,
        }


class InvalidToken(Exception):
    pass


class LineSandbox(Sandbox):
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

    def set_followers(self, followers: int | list[str]) -> None:
        """Replace the follower list: a count of generated ids, or explicit ids."""
        with self._lock:
            self._followers = _Followers(followers)

    def add_followers(self, ids: list[str]) -> None:
        with self._lock:
            self._followers.add([str(u) for u in ids])

    def remove_followers(self, ids: list[str]) -> None:
        with self._lock:
            self._followers.remove([str(u) for u in ids])

    def follower_count(self) -> int:
        with self._lock:
            return self._followers.count()

    def follower_ids(self) -> list[str]:
        """Every current follower id, in paging order (don't call with a million followers)."""
        with self._lock:
            return list(self._followers)

    def set_webhook_endpoint(self, endpoint: str | None) -> None:
        """What ``PUT /v2/bot/channel/webhook/endpoint`` does (None: forget it)."""
        if endpoint is not None and _endpoint_problem(endpoint):
            raise ValueError(_endpoint_problem(endpoint))
        with self._lock:
            self._webhook_endpoint = endpoint or ""

    def webhook(self) -> dict[str, Any]:
        """What ``GET /v2/bot/channel/webhook/endpoint`` answers."""
        with self._lock:
            if self._faults.webhook_unset or not self._webhook_endpoint:
                return {"endpoint": "", "active": False}
            return {"endpoint": self._webhook_endpoint, "active": not self._faults.webhook_inactive}

    def set_faults(
        self,
        *,
        forbidden: bool | None = None,
        fail_pages: dict[int | str, int] | None = None,
        expire_tokens: bool | None = None,
        latency_ms: float | None = None,
        page_time_ms: float | None = None,
        webhook_unset: bool | None = None,
        webhook_inactive: bool | None = None,
    ) -> None:
        """Update the faults named (others stay as they are).

        ``forbidden``: every followers call answers 403. ``fail_pages``: ``{page
        index: n}`` — that page answers 500 ``n`` times, then works (page 0 is the
        request without ``start``). ``expire_tokens``: every ``start`` is rejected
        as expired. ``latency_ms``: delay every ``/v2`` request. ``page_time_ms``:
        answer each followers page that long after its request arrived, the
        sandbox's own work included (LINE's pace: each page in N ms).
        ``webhook_unset``: LINE has no webhook URL on file (a test delivery without
        an ``endpoint`` answers 400). ``webhook_inactive``: the URL is on file but
        "Use webhook" is off (``active: false``).
        """
        with self._lock:
            f = self._faults
            if forbidden is not None:
                f.forbidden = bool(forbidden)
            if fail_pages is not None:
                f.fail_pages = {int(k): int(v) for k, v in fail_pages.items()}
            if expire_tokens is not None:
                f.expire_tokens = bool(expire_tokens)
            if latency_ms is not None:
                f.latency_ms = float(latency_ms)
            if page_time_ms is not None:
                f.page_time_ms = float(page_time_ms)
            if webhook_unset is not None:
                f.webhook_unset = bool(webhook_unset)
            if webhook_inactive is not None:
                f.webhook_inactive = bool(webhook_inactive)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = LineFaults()

    def faults(self) -> dict[str, Any]:
        with self._lock:
            return self._faults.to_json()

    def pushes(self) -> list[dict[str, Any]]:
        """Accepted pushes, oldest first: ``{"to", "messages", "retry_key", "follower"}``."""
        with self._lock:
            return [dict(p) for p in self._pushes]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": {path: dict(c) for path, c in self._by_status.items()},
                "pages_served": self._pages,
                "ids_served": self._ids_served,
                "followers": self._followers.count(),
            }

    # ------------------------------------------------------------------ tokens

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_SIG_BYTES]

    def make_token(self, offset: int, page: int, issued_at: float | None = None) -> str:
        issued = int(self._now() if issued_at is None else issued_at)
        payload = f"{offset}:{page}:{issued}".encode()
        return base64.urlsafe_b64encode(payload + self._sign(payload)).decode().rstrip("=")

    def _read_token(self, token: str, now: float) -> tuple[int, int]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            payload, sig = raw[:-_SIG_BYTES], raw[-_SIG_BYTES:]
            if not hmac.compare_digest(sig, self._sign(payload)):
                raise InvalidToken("bad signature")
            offset, page, issued = (int(x) for x in payload.decode().split(":"))
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidToken("malformed") from e
        if now - issued > self.token_ttl_seconds:
            raise InvalidToken("expired")
        return offset, page

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

    # ------------------------------------------------------------------ webhook endpoint

    def _webhook_endpoint_call(self, request: Request) -> Response:
        if request.method == "GET":
            return self._reply(WEBHOOK_ENDPOINT, 200, self.webhook())
        endpoint, problem = _endpoint_in(request, required=True)
        if problem:
            return self._reply(WEBHOOK_ENDPOINT, 400, problem)
        self.set_webhook_endpoint(endpoint)
        return self._reply(WEBHOOK_ENDPOINT, 200, {})

    def _webhook_test(self, request: Request) -> Response:
        endpoint, problem = _endpoint_in(request, required=False)
        if problem:
            return self._reply(WEBHOOK_TEST, 400, problem)
        if not endpoint:
            endpoint = self.webhook()["endpoint"]
            if not endpoint:
                return self._reply(WEBHOOK_TEST, 400, {"message": WEBHOOK_NOT_SET})
        body = json.dumps({"destination": BOT_USER_ID, "events": []}, separators=(",", ":")).encode()
        result = deliver_test_webhook(endpoint, body, self.channel_secret, timeout=self.webhook_timeout)
        result["timestamp"] = _iso_now(self._now())
        return self._reply(WEBHOOK_TEST, 200, result)

    def _followers_page(self, request: Request) -> Response:
        if self._faults.forbidden:
            return self._reply(FOLLOWERS, 403, {"message": FORBIDDEN})
        try:
            limit = int(request.query.get("limit") or MAX_PAGE_SIZE)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_PAGE_SIZE:
            return self._reply(FOLLOWERS, 400, {"message": f"Invalid limit param (1..{MAX_PAGE_SIZE})"})
        start = request.query.get("start")
        offset, page = 0, 0
        if start:
            if self._faults.expire_tokens:
                return self._reply(FOLLOWERS, 400, {"message": INVALID_START})
            try:
                offset, page = self._read_token(start, self._now())
            except InvalidToken:
                return self._reply(FOLLOWERS, 400, {"message": INVALID_START})
        left = self._faults.fail_pages.get(page, 0)
        if left > 0:
            self._faults.fail_pages[page] = left - 1
            return self._reply(FOLLOWERS, 500, {"message": "Internal server error (sandbox fault)"})
        ids, next_offset = self._followers.page(offset, limit)
        body: dict[str, Any] = {"userIds": ids}
        if next_offset is not None:
            body["next"] = self.make_token(next_offset, page + 1)
        self._pages += 1
        self._ids_served += len(ids)
        return self._reply(FOLLOWERS, 200, body)

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

    def _reply(self, path: str, status: int, payload: Any, *, count: bool = True) -> Response:
        if count:
            with self._lock:
                counts = self._by_status.setdefault(path, {})
                counts[str(status)] = counts.get(str(status), 0) + 1
        return json_response(status, payload, {"X-Line-Request-Id": str(uuid.uuid4())})

    # ------------------------------------------------------------------ /_sandbox/*

    def _admin(self, request: Request, path: str) -> Response:
        route = (request.method, path)
        try:
            if route == ("GET", "/_sandbox/health"):
                return json_response(200, {"ok": True})
            if route == ("GET", "/_sandbox/stats"):
                return json_response(200, self.stats())
            if route == ("GET", "/_sandbox/faults"):
                return json_response(200, self.faults())
            if route == ("POST", "/_sandbox/faults"):
                body = admin_body(request)
                if body.pop("clear", False):
                    self.clear_faults()
                reject_unknown(body, {"forbidden", "fail_pages", "expire_tokens", "latency_ms", "page_time_ms",
                                      "webhook_unset", "webhook_inactive"})
                self.set_faults(**body)
                return json_response(200, self.faults())
            if route == ("GET", "/_sandbox/pushes"):
                return json_response(200, {"pushes": self.pushes()})
            if route == ("GET", "/_sandbox/followers"):
                return json_response(200, {"count": self.follower_count()})
            if route == ("POST", "/_sandbox/followers"):
                body = admin_body(request)
                reject_unknown(body, {"count", "ids", "add", "remove"})
                if "count" in body:
                    self.set_followers(int(body["count"]))
                if "ids" in body:
                    self.set_followers(list(body["ids"]))
                self.add_followers(list(body.get("add", [])))
                self.remove_followers(list(body.get("remove", [])))
                return json_response(200, {"count": self.follower_count()})
            if route == ("POST", "/_sandbox/reset"):
                self.reset()
                return json_response(200, {"ok": True})
        except (ValueError, TypeError) as e:
            return json_response(400, {"message": str(e)})
        return json_response(404, {"message": "no such sandbox endpoint"})



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


# ---------------------------------------------------------------------- the test delivery


def _endpoint_problem(endpoint: Any) -> str | None:
    if not isinstance(endpoint, str) or not endpoint:
        return "endpoint must be a non-empty string"
    if len(endpoint) > MAX_ENDPOINT_LENGTH:
        return f"endpoint must be at most {MAX_ENDPOINT_LENGTH} characters"
    p = urlsplit(endpoint)
    if p.scheme not in ("https", "http") or not p.netloc:
        return "endpoint must be an https:// URL (the sandbox also takes http://)"
    return None


def _endpoint_in(request: Request, *, required: bool) -> tuple[str | None, dict[str, Any] | None]:
    """The ``endpoint`` of a JSON body, or LINE's 400 body explaining what is wrong with it."""
    try:
        body = request.json() if request.body else {}
    except (ValueError, UnicodeDecodeError):
        return None, {"message": "The request body could not be parsed as JSON"}
    if not isinstance(body, dict):
        return None, {"message": "The request body must be a JSON object"}
    endpoint = body.get("endpoint")
    if endpoint is None and not required:
        return None, None
    problem = _endpoint_problem(endpoint)
    if problem:
        return None, {"message": "The request body has 1 error(s)",
                      "details": [{"message": problem, "property": "endpoint"}]}
    return endpoint, None


def deliver_test_webhook(endpoint: str, body: bytes, channel_secret: str, *, timeout: float) -> dict[str, Any]:
    """POST ``body`` signed with ``channel_secret`` to ``endpoint``; LINE's test-result fields (no timestamp)."""
    req = urllib.request.Request(endpoint, data=body, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8",
        "X-Line-Signature": sign(channel_secret, body),
        "User-Agent": "LineBotWebhook/2.0",
    })
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as e:
        status = e.code
        e.close()
    except TimeoutError:
        return {"success": False, "statusCode": 0, "reason": "REQUEST_TIMEOUT", "detail": "Request timeout"}
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            return {"success": False, "statusCode": 0, "reason": "REQUEST_TIMEOUT", "detail": "Request timeout"}
        return {"success": False, "statusCode": 0, "reason": "COULD_NOT_CONNECT",
                "detail": f"Connection failed: {endpoint}"}
    except OSError:
        return {"success": False, "statusCode": 0, "reason": "COULD_NOT_CONNECT",
                "detail": f"Connection failed: {endpoint}"}
    ok = 200 <= status < 300
    return {"success": ok, "statusCode": status, "reason": "OK" if ok else "ERROR_STATUS_CODE", "detail": str(status)}


def _iso_now(now: float) -> str:
    t = dt.datetime.fromtimestamp(now, tz=dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")
