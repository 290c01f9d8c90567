"""``POST /line/events``: verify, check the envelope, queue the raw body, answer.

No per-event work happens here; the workers do it. Outcomes:

  401  X-Line-Signature missing or wrong             nothing stored
  413  body over INGRESS_MAX_BODY_BYTES               nothing stored
  400  signed, but not the envelope                   raw body kept in the rejected stream
  200  events: [] (LINE's "Verify" button)            nothing queued
  200  queued                                         raw body in the webhook stream
  503  Redis could not take the body                  LINE redelivers
"""

from __future__ import annotations

import logging
import time

import redis
from flask import Blueprint, Response, request

from shared.envelope import validate_envelope
from shared.errors import InvalidWebhook, StoreUnavailable
from shared.signature import verify
from shared.webhook_queue import enqueue, reject

from ingress import metrics
from ingress.state import IngressState, current, json_response

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)

SIGNATURE_HEADER = "X-Line-Signature"


@bp.post("/line/events")
def line_events() -> Response:
    started = time.perf_counter()
    outcome, status, payload, events = _receive(current())
    metrics.record(outcome, time.perf_counter() - started, events)
    return json_response(status, payload)


def _receive(st: IngressState) -> tuple[str, int, dict[str, str], int]:
    """Handle one delivery; return (metrics outcome, HTTP status, JSON payload, events queued)."""
    body = _read_body(st.settings.ingress_max_body_bytes)
    if body is None:
        return metrics.TOO_LARGE, 413, {"error": "body too large"}, 0

    if not verify(st.secret, body, request.headers.get(SIGNATURE_HEADER)):
        log.info("unauthorized webhook: signature %s (%d bytes)",
                 "wrong" if request.headers.get(SIGNATURE_HEADER) else "missing", len(body))
        return metrics.UNAUTHORIZED, 401, {"error": "invalid signature"}, 0

    try:
        envelope = validate_envelope(body)
    except InvalidWebhook as e:
        return _keep_rejected(st, body, str(e))

    count = len(envelope["events"])
    if count == 0:
        return metrics.VERIFY_ONLY, 200, {"status": "ok"}, 0
    try:
        entry_id = enqueue(st.redis, st.keys, body)
    except (StoreUnavailable, redis.RedisError) as e:
        log.warning("webhook not stored, answering 503: %s", e.__cause__ or e)
        return metrics.UNAVAILABLE, 503, {"error": "store unavailable"}, 0
    log.debug("queued webhook %s (%d events, %d bytes)", entry_id, count, len(body))
    return metrics.ACCEPTED, 200, {"status": "ok"}, count


def _read_body(limit: int) -> bytes | None:
    """The raw body, or None when it is longer than ``limit`` bytes.

    A declared Content-Length over the limit is refused before reading. A body
    without one (chunked) is read up to ``limit + 1`` bytes; Werkzeug's own
    ``MAX_CONTENT_LENGTH`` check would silently cut such a body at the limit.
    """
    length = request.content_length
    if length is not None:
        if length > limit:
            return None
        if not request.environ.get("wsgi.input_terminated"):
            return request.get_data(cache=False)  # Werkzeug bounds the read to Content-Length
        limit = length  # the server frames the body: read it directly (no wrapper per request)
    elif not request.environ.get("wsgi.input_terminated"):
        return b""  # no length and no server-side framing: WSGI says there is no body
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return None if size > limit else b"".join(chunks)


def _keep_rejected(st: IngressState, body: bytes, reason: str) -> tuple[str, int, dict[str, str], int]:
    try:
        entry_id = reject(st.redis, st.keys, body, reason, max_len=st.settings.rejected_max)
    except (StoreUnavailable, redis.RedisError) as e:
        log.warning("invalid webhook not stored, answering 503: %s", e.__cause__ or e)
        return metrics.UNAVAILABLE, 503, {"error": "store unavailable"}, 0
    log.warning("invalid webhook kept as %s in %s: %s", entry_id, st.keys.rejected, reason)
    return metrics.INVALID, 400, {"error": "invalid webhook", "reason": reason}, 0
