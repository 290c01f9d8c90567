"""``POST /line/events`` (and ``/line/events/<channel>``): verify, check the envelope, queue the raw body, answer.

``/line/events`` is the channel ``default``; ``/line/events/<name>`` the channel ``name`` of the
channels file (shared/channels.py), verified with that channel's secret (or, during a rotation,
its previous one) and queued in that channel's stream.

No per-event work happens here; the workers do it. Outcomes:

  404  no such channel                               nothing read or stored
  401  X-Line-Signature missing or wrong             nothing stored; counted, logged as a summary a minute
  413  body over INGRESS_MAX_BODY_BYTES               nothing stored
  411  body without Content-Length (chunked)          nothing stored, the body is not read
  400  signed, but not the envelope                   raw body kept in the rejected stream
  200  events: [] (LINE's "Verify" button)            nothing queued
  200  queued                                         raw body in the webhook stream
  503  Redis could not take the body                  LINE redelivers
  503  Redis's memory above the watermark             nothing stored; LINE redelivers (ingress/memory_guard.py)
  500  a bug (logged with its traceback)              nothing stored; LINE redelivers

The handler is a plain WSGI application. ``create_app`` mounts it in front of
Flask (``WebhookDispatch``): a POST to this path never builds Flask's request
and application contexts, URL adapter or session, which together cost about
as much CPU as the handler's own work (bench/ingress). The route is declared
in Flask too, so its ``url_map``, 405 for other methods and the JSON error
pages are those of every other route; that view serves the same handler.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis
from flask import Blueprint, Flask
from werkzeug.http import HTTP_STATUS_CODES

from shared.envelope import validate_envelope
from shared.errors import InvalidWebhook, StoreUnavailable
from shared.keys import DEFAULT_CHANNEL
from shared.signature import verify
from shared.webhook_queue import enqueue_pinned, reject

from ingress import metrics
from ingress.framing import LENGTH_REQUIRED_DETAIL
from ingress.state import EXTENSION, IngressState, Route, current

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)

PATH = "/line/events"
CHANNEL_PREFIX = PATH + "/"
LENGTH_REQUIRED = {"error": "length required", "detail": LENGTH_REQUIRED_DETAIL}
SIGNATURE_ENVIRON = "HTTP_X_LINE_SIGNATURE"  # the X-Line-Signature header, any case

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WebhookDispatch:
    """WSGI middleware: ``POST /line/events`` to the webhook handler, the rest to Flask."""

    def __init__(self, state: IngressState, flask_wsgi: WSGIApp):
        self.state = state
        self.flask_wsgi = flask_wsgi

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if environ.get("REQUEST_METHOD") == "POST":
            if path == PATH:
                return serve(self.state, environ, start_response)
            if path and path.startswith(CHANNEL_PREFIX):
                return serve(self.state, environ, start_response, path[len(CHANNEL_PREFIX):])
        return self.flask_wsgi(environ, start_response)


def install(app: Flask) -> None:
    """Declare the route in Flask and put the dispatcher in front of it."""
    app.register_blueprint(bp)
    app.wsgi_app = WebhookDispatch(app.extensions[EXTENSION], app.wsgi_app)  # type: ignore[method-assign]


@bp.post(PATH)
def line_events() -> WSGIApp:
    # Reached only when the dispatcher is not in front (a Flask view may return a WSGI app).
    st = current()
    return lambda environ, start_response: serve(st, environ, start_response)


@bp.post(CHANNEL_PREFIX + "<name>")
def channel_events(name: str) -> WSGIApp:
    st = current()
    return lambda environ, start_response: serve(st, environ, start_response, name)


def serve(st: IngressState, environ: dict[str, Any], start_response: StartResponse,
          channel: str = DEFAULT_CHANNEL) -> list[bytes]:
    started = time.perf_counter()
    route = st.route(channel)
    if route is None:  # answered before the body is read: nothing is stored
        metrics.record(metrics.UNKNOWN_CHANNEL, time.perf_counter() - started)
        return _respond(start_response, 404, {"error": "unknown channel"})
    try:
        outcome, status, payload, events = receive(st, environ, route)
    except Exception:  # a bug: answer like Flask would (LINE retries a 500), keep the traceback
        log.exception("webhook handler failed")
        return _respond(start_response, 500, {"error": "internal server error"})
    metrics.record(outcome, time.perf_counter() - started, events)
    return _respond(start_response, status, payload)


def receive(st: IngressState, environ: dict[str, Any], route: Route | None = None,
            ) -> tuple[str, int, dict[str, str], int]:
    """Handle one delivery for ``route`` (default: the channel ``default``); return (metrics
    outcome, HTTP status, JSON payload, events queued)."""
    route = route or st.route(DEFAULT_CHANNEL)
    if environ.get("HTTP_TRANSFER_ENCODING"):
        # linesync's worker refuses these before the app (ingress/framing.py); other servers may not.
        return metrics.LENGTH_REQUIRED, 411, LENGTH_REQUIRED, 0
    body = read_body(environ, st.settings.ingress_max_body_bytes)
    if body is None:
        return metrics.TOO_LARGE, 413, {"error": "body too large"}, 0

    signature = environ.get(SIGNATURE_ENVIRON)
    matched = next((which for which, secret in route.secrets if verify(secret, body, signature)), None)
    if matched is None:
        _log_unauthorized(st, "wrong" if signature else "missing")
        return metrics.UNAUTHORIZED, 401, {"error": "invalid signature"}, 0
    metrics.count_signature(route.name, matched)

    try:
        envelope = validate_envelope(body)
    except InvalidWebhook as e:
        return _keep_rejected(st, route, body, str(e))

    count = len(envelope["events"])
    if count == 0:
        return metrics.VERIFY_ONLY, 200, {"status": "ok"}, 0
    try:
        if st.memory.over(st.redis):  # cached: Redis is asked at most once a second per process
            return metrics.REDIS_FULL, 503, {"error": "store full"}, 0
        entry_id = enqueue_pinned(st.connection, route.keys, body,
                                  replicas=1 if st.settings.redis_durability == "replicas" else 0)
    except (StoreUnavailable, redis.RedisError) as e:
        log.warning("webhook not stored, answering 503: %s", e.__cause__ or e)
        return metrics.UNAVAILABLE, 503, {"error": "store unavailable"}, 0
    log.debug("queued webhook %s (%d events, %d bytes)", entry_id, count, len(body))
    return metrics.ACCEPTED, 200, {"status": "ok"}, count


def read_body(environ: dict[str, Any], limit: int) -> bytes | None:
    """The raw body (its Content-Length bytes), or None when it is longer than ``limit`` bytes.

    A declared Content-Length over the limit is refused before reading, and no
    more than the declared length is ever read (the server may not bound the
    stream itself). No Content-Length: no body (a chunked one is refused
    before this is called).
    """
    length = _content_length(environ)
    if length is None:
        return b""
    return None if length > limit else _read_up_to(environ["wsgi.input"], length)


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return None
    try:
        length = int(raw)
    except ValueError:
        return None
    return length if length >= 0 else None


def _read_up_to(stream: Any, size: int) -> bytes:
    chunks: list[bytes] = []
    got = 0
    while got < size:
        chunk = stream.read(size - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _log_unauthorized(st: IngressState, kind: str) -> None:
    """Anyone may send these: counted (the metric), logged a minute's worth per line (ingress/log_summary.py)."""
    summary = st.unauthorized_log.note(kind)
    if summary is not None:
        log.warning("unauthorized webhooks (401, nothing stored): %d in the last %.0f s "
                    "(signature missing: %d, wrong: %d); at most one such line every %.0f s, "
                    "each one counted in linesync_ingress_requests_total{outcome=\"unauthorized\"}",
                    summary.total, summary.seconds, summary.counts.get("missing", 0),
                    summary.counts.get("wrong", 0), st.unauthorized_log.interval)


def _keep_rejected(st: IngressState, route: Route, body: bytes, reason: str,
                   ) -> tuple[str, int, dict[str, str], int]:
    try:
        if st.memory.over(st.redis):
            return metrics.REDIS_FULL, 503, {"error": "store full"}, 0
        entry_id = reject(st.redis, route.keys, body, reason, max_len=st.settings.rejected_max)
    except (StoreUnavailable, redis.RedisError) as e:
        log.warning("invalid webhook not stored, answering 503: %s", e.__cause__ or e)
        return metrics.UNAVAILABLE, 503, {"error": "store unavailable"}, 0
    log.warning("invalid webhook kept as %s in %s: %s", entry_id, route.keys.rejected, reason)
    return metrics.INVALID, 400, {"error": "invalid webhook", "reason": reason}, 0


def _respond(start_response: StartResponse, status: int, payload: dict[str, str]) -> list[bytes]:
    status_line, body, length = _encoded(status, tuple(payload.items()))
    start_response(status_line, [("Content-Type", "application/json"), ("Content-Length", length)])
    return [body]


@functools.lru_cache(maxsize=64)  # a handful of answers, but for rejected bodies' reasons
def _encoded(status: int, payload: tuple[tuple[str, str], ...]) -> tuple[str, bytes, str]:
    body = json.dumps(dict(payload), separators=(",", ":")).encode()
    return f"{status} {HTTP_STATUS_CODES[status]}", body, str(len(body))
