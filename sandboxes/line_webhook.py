"""The LINE sandbox's webhook: the URL on file, and the signed test delivery to the ingress.

- ``GET /v2/bot/channel/webhook/endpoint`` → ``{"endpoint": …, "active": …}``
  (no URL on file: ``{"endpoint": "", "active": false}``; LINE does not document
  that case, so ``linesync doctor`` also takes a ``404`` to mean "not set");
- ``PUT /v2/bot/channel/webhook/endpoint`` with ``{"endpoint": "https://…"}``
  sets it (``http://`` is accepted too, for local ingresses; LINE itself takes HTTPS only);
- ``POST /v2/bot/channel/webhook/test`` with ``{"endpoint": …}`` (optional; default
  the URL on file) really POSTs ``{"destination": <bot user id>, "events": []}``
  there, signed (``X-Line-Signature``) with the sandbox's channel secret, and
  answers like LINE: ``{"success", "timestamp", "statusCode", "reason", "detail"}``.

A mixin of :class:`sandboxes.line.LineSandbox`; the test delivery runs outside its lock.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.error
import urllib.request
from typing import Any, Callable
from urllib.parse import urlsplit

from sandboxes.line_bot import BOT_USER_ID
from sandboxes.line_faults import LineFaults
from sandboxes.server import Request, Response
from shared.signature import sign

# Signs the test webhook (POST /v2/bot/channel/webhook/test); give the ingress's LINE_CHANNEL_SECRET.
DEFAULT_CHANNEL_SECRET = "sandbox-channel-secret"
# LINE gives a webhook this long to answer (s).
WEBHOOK_TIMEOUT_SECONDS = 2.0
# LINE's limit on a webhook URL's length.
MAX_ENDPOINT_LENGTH = 500

WEBHOOK_ENDPOINT = "/v2/bot/channel/webhook/endpoint"
WEBHOOK_TEST = "/v2/bot/channel/webhook/test"
WEBHOOK_NOT_SET = "The webhook endpoint is not set"


class WebhookApi:
    """The webhook URL in-process and its two endpoints (uses the sandbox's lock, faults,
    channel secret, webhook timeout and ``_reply``)."""

    _lock: threading.RLock
    _faults: LineFaults
    _webhook_endpoint: str
    _now: Callable[[], float]
    channel_secret: str
    webhook_timeout: float

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

    # ------------------------------------------------------------------ HTTP

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
