"""LINE: the access token works, the webhook URL on file is ours and on, LINE's test delivery reaches us.

The interpretations (:func:`webhook_from`, :func:`delivery_from`, :func:`same_url`)
are pure; the request functions only fetch and hand over.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from linesync.doctor.http import Http, HttpFailure, Reply
from shared.check import Check, failed, passed, skipped, warning
from workers.line_api import BOT_INFO_PATH, error_text

WEBHOOK_ENDPOINT_PATH = "/v2/bot/channel/webhook/endpoint"
WEBHOOK_TEST_PATH = "/v2/bot/channel/webhook/test"

TOKEN_HINT = "LINE Developers console > your channel > Messaging API > Channel access token"
WEBHOOK_HINT = "LINE Developers console > your channel > Messaging API > Webhook settings"


def _get(http: Http, base_url: str, token: str, path: str, body: Any = None, method: str = "GET") -> Reply:
    return http.request(method, base_url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"},
                        json=body)


def _reason(reply: Reply) -> str:
    rid = reply.headers.get("X-Line-Request-Id") or reply.headers.get("x-line-request-id")
    return error_text(reply.text) + (f" [X-Line-Request-Id {rid}]" if rid else "")


def token(http: Http, base_url: str, access_token: str | None) -> Check:
    name = "line.token"
    if not access_token:
        return failed(name, "LINE_CHANNEL_ACCESS_TOKEN is not set", f"set it: {TOKEN_HINT}")
    try:
        reply = _get(http, base_url, access_token, BOT_INFO_PATH)
    except HttpFailure as e:
        return failed(name, f"{base_url}{BOT_INFO_PATH}: {e}",
                      "check LINE_API_BASE_URL and that this host can reach it (DNS, firewall, proxy)")
    if reply.status == 200:
        doc = reply.json()
        doc = doc if isinstance(doc, dict) else {}
        who = " ".join(str(x) for x in (doc.get("basicId"), doc.get("displayName")) if x)
        return passed(name, "the access token works" + (f": bot {who}" if who else ""))
    if reply.status == 401:
        return failed(name, f"LINE refused LINE_CHANNEL_ACCESS_TOKEN (401: {_reason(reply)})",
                      f"issue a new long-lived token: {TOKEN_HINT}")
    return failed(name, f"{BOT_INFO_PATH} answered {reply.status} ({_reason(reply)})",
                  "check LINE_API_BASE_URL and LINE's status page")


def same_url(a: str, b: str) -> bool:
    """Equal as URLs: scheme and host in any case, default ports, path, query."""
    pa, pb = urlsplit(a.strip()), urlsplit(b.strip())

    def norm(p):
        port = p.port or {"http": 80, "https": 443}.get(p.scheme.lower())
        return p.scheme.lower(), (p.hostname or "").lower(), port, p.path or "/", p.query

    return norm(pa) == norm(pb)


def webhook_from(status: int, doc: Any, expected: str | None) -> list[Check]:
    """``line.webhook_url`` and ``line.webhook_active`` from LINE's answer to GET …/webhook/endpoint."""
    endpoint = doc.get("endpoint") if isinstance(doc, dict) else None
    active = doc.get("active") if isinstance(doc, dict) else None
    target = f"set it to {expected}" if expected else "set it to https://<your ingress>/line/events"
    if status == 404 or (status == 200 and not endpoint):
        return [failed("line.webhook_url", "LINE has no webhook URL on file: LINE sends no events",
                       f"{target} ({WEBHOOK_HINT}, or PUT {WEBHOOK_ENDPOINT_PATH}) and turn on Use webhook"),
                skipped("line.webhook_active", "no webhook URL on file")]
    if status != 200 or not isinstance(endpoint, str):
        return [failed("line.webhook_url", f"{WEBHOOK_ENDPOINT_PATH} answered {status}",
                       "check LINE_API_BASE_URL and LINE's status page"),
                skipped("line.webhook_active", "webhook settings unknown")]
    if expected is None:
        url_check = warning("line.webhook_url", f"LINE sends webhooks to {endpoint}; LINESYNC_PUBLIC_URL is "
                                                "not set, so it cannot be compared with the ingress",
                            "set LINESYNC_PUBLIC_URL to the ingress's public base URL (without /line/events)")
    elif same_url(endpoint, expected):
        url_check = passed("line.webhook_url", f"LINE sends webhooks to {endpoint}")
    else:
        url_check = failed("line.webhook_url", f"LINE sends webhooks to {endpoint}, not to {expected} "
                                               "(LINESYNC_PUBLIC_URL + /line/events)",
                           f"set the webhook URL to {expected} ({WEBHOOK_HINT}), or correct LINESYNC_PUBLIC_URL")
    if active is True:
        active_check = passed("line.webhook_active", "Use webhook is on")
    else:
        active_check = failed("line.webhook_active", "Use webhook is off: LINE keeps the URL but sends no events",
                              f"turn on Use webhook ({WEBHOOK_HINT})")
    return [url_check, active_check]


def webhook(http: Http, base_url: str, access_token: str, expected: str | None) -> list[Check]:
    try:
        reply = _get(http, base_url, access_token, WEBHOOK_ENDPOINT_PATH)
    except HttpFailure as e:
        return [failed("line.webhook_url", f"{base_url}{WEBHOOK_ENDPOINT_PATH}: {e}",
                       "check LINE_API_BASE_URL and that this host can reach it"),
                skipped("line.webhook_active", "webhook settings unknown")]
    return webhook_from(reply.status, reply.json(), expected)


def delivery_from(status: int, doc: Any, target: str, reason: str = "") -> Check:
    """``line.test_delivery`` from LINE's answer to POST …/webhook/test."""
    name = "line.test_delivery"
    if status != 200 or not isinstance(doc, dict):
        return failed(name, f"LINE could not run the test delivery ({status}: {reason or 'no details'})",
                      f"set a webhook URL first ({WEBHOOK_HINT})" if status == 400 else
                      "check LINE_API_BASE_URL and LINE's status page")
    code = doc.get("statusCode")
    detail = f"{doc.get('reason', '?')}, {doc.get('detail', '')}".rstrip(", ")
    if doc.get("success") is True:
        return passed(name, f"LINE delivered a signed test webhook to {target} ({code})")
    if code == 401:
        return failed(name, f"the ingress at {target} refused LINE's signature (401): its LINE_CHANNEL_SECRET "
                            "is not this channel's secret",
                      "set LINE_CHANNEL_SECRET on the ingress to the channel secret (LINE Developers console > "
                      "your channel > Basic settings) and restart it")
    if code == 503:
        return failed(name, f"the ingress at {target} answered 503: it cannot store webhooks (Redis)",
                      "check the ingress's REDIS_URL and Redis itself (`linesync doctor` on the ingress host)")
    if isinstance(code, int) and code <= 0:
        return failed(name, f"LINE could not get an answer from {target} ({detail})",
                      "make sure the ingress runs and is reachable from the internet over HTTPS with a valid "
                      "certificate, and answers within 2 s")
    return failed(name, f"the ingress at {target} answered {code} to LINE's test delivery ({detail})",
                  "check that the URL ends in /line/events and the ingress's logs")


def delivery(http: Http, base_url: str, access_token: str, endpoint: str | None) -> Check:
    """Ask LINE to deliver a test webhook to ``endpoint`` (None: the URL LINE has on file)."""
    body = {"endpoint": endpoint} if endpoint else {}
    target = endpoint or "the webhook URL on file"
    try:
        reply = _get(http, base_url, access_token, WEBHOOK_TEST_PATH, body=body, method="POST")
    except HttpFailure as e:
        return failed("line.test_delivery", f"{base_url}{WEBHOOK_TEST_PATH}: {e}",
                      "check LINE_API_BASE_URL and that this host can reach it")
    return delivery_from(reply.status, reply.json(), target, _reason(reply) if reply.status != 200 else "")
