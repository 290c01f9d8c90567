"""Token-protected admin endpoints for identity reconciliation (docs/reference.md, the admin bind).

All under ``/v1/``, served on the admin bind only (ingress/surface.py), all
need ``Authorization: Bearer <LINESYNC_ADMIN_TOKEN>`` (compared in constant
time). With the variable unset the endpoints are off: they answer 404 as if
absent. A wrong or missing token is 401 and logged; after 10 of them from one
remote address within a minute, that address's wrong tokens get 429 for a
minute, unlogged (ingress/auth_throttle.py, per process). The right token
always passes: bad tokens cannot lock an operator out. Every call is logged at INFO: who (the
remote address), what (method and path), how many items, the answer; never the
token or the body.

  POST   /v1/links            [{"external_id", "line_user_id"}, ...]  link pairs
  DELETE /v1/links/<external_id>                                        unlink
  POST   /v1/identify         [{"external_id", "line_user_id"}, ...]  queue /users/identify
  POST   /v1/merge            [{"external_id", "line_user_id"}, ...]  queue /users/merge
  POST   /v1/link-nonces      {"nonce", "external_id", "ttl_seconds"?} or a list of them
"""

from __future__ import annotations

import hmac
import logging
import math

import redis
from flask import Blueprint, Response, g, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from ingress.state import current as state, json_response
from shared import identity, links
from shared.clock import redis_now
from shared.redis_conn import REDIS_DOWN

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/v1")

# Most pairs one request may carry (bigger imports: `linesync link --csv`).
MAX_ITEMS = 10_000


class PairSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    external_id = fields.String(required=True)
    line_user_id = fields.String(load_default=None)
    native_line_id = fields.String(load_default=None)  # the CSV's column name, accepted too


class NonceSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    nonce = fields.String(required=True, validate=validate.Length(min=1, max=255))
    external_id = fields.String(required=True, validate=validate.Length(min=1, max=links.MAX_EXTERNAL_ID))
    ttl_seconds = fields.Integer(load_default=identity.DEFAULT_NONCE_TTL, validate=validate.Range(min=1, max=86400))


@bp.before_request
def _authorize():
    st = state()
    token = st.settings.admin_token
    if not token:
        return json_response(404, {"error": "not found"})
    given = request.headers.get("Authorization", "")
    if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return None  # the right token passes, blocked address or not: bad tokens cannot lock it out
    who = request.remote_addr or "?"
    g.admin_logged = True
    wait = st.admin_failures.retry_after(who)
    if wait:  # announced when the block started; not logged one by one
        resp = json_response(429, {"error": "too many bad tokens, try again later"})
        resp.headers["Retry-After"] = str(math.ceil(wait))
        return resp
    count = st.admin_failures.failed(who)
    log.warning("admin API: %s token from %s on %s %s (%d in the last %.0f s)%s",
                "wrong" if given else "no", who, request.method, request.path, count,
                st.admin_failures.window,
                f"; its bad tokens get 429 for {st.admin_failures.block:.0f} s"
                if count >= st.admin_failures.max_failures else "")
    return json_response(401, {"error": "unauthorized"})


@bp.after_request
def _log_call(resp: Response) -> Response:
    """Who did what, to how many items: one line per authorized call (no token, no body)."""
    if not g.get("admin_logged") and state().settings.admin_token:
        items = g.get("admin_items")
        log.info("admin API: %s %s from %s: %s items, answered %d", request.method, request.path,
                 request.remote_addr or "?", "-" if items is None else items, resp.status_code)
    return resp


def _items(schema: Schema):
    doc = request.get_json(silent=True)
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        return None, json_response(400, {"error": "expected a JSON object or a non-empty list of objects"})
    g.admin_items = len(doc)
    if len(doc) > MAX_ITEMS:
        return None, json_response(413, {"error": f"at most {MAX_ITEMS} items per request"})
    return doc, None


def _pairs():
    doc, err = _items(PairSchema())
    if err:
        return None, None, err
    good, errors = [], []
    for i, raw in enumerate(doc):
        try:
            item = PairSchema().load(raw if isinstance(raw, dict) else {})
        except ValidationError as e:
            errors.append({"index": i, "error": str(e.messages)})
            continue
        uid = item["line_user_id"] or item["native_line_id"] or ""
        problem = links.check_pair(item["external_id"], uid)
        if problem:
            errors.append({"index": i, "error": problem})
        else:
            good.append((item["external_id"], uid))
    return good, errors, None


def _store_unavailable():
    return json_response(503, {"error": "store unavailable, try again"})


STORE_ERRORS = REDIS_DOWN + (redis.RedisError,)


def _each_pair(op, ok_status: int, done: str):
    """Validate the pairs, apply ``op(pipeline, keys, external_id, line_user_id)`` to the good
    ones in one round trip, and answer with the count and the bad ones by index."""
    good, errors, err = _pairs()
    if err:
        return err
    st = state()
    try:
        p = st.redis.pipeline(transaction=False)
        for ext, uid in good:
            op(p, st.keys, ext, uid)
        p.execute()
    except STORE_ERRORS:
        return _store_unavailable()
    return json_response(ok_status if not errors else 207, {done: len(good), "errors": errors})


@bp.post("/links")
def link_pairs():
    try:
        now = int(redis_now(state().redis) * 1000)  # the outbox's scores are in Redis's clock
    except REDIS_DOWN:
        return json_response(503, {"error": "store unavailable, try again"})
    return _each_pair(lambda p, keys, ext, uid: links.link(p, keys, ext, uid, now_ms=now), 200, "linked")


@bp.delete("/links/<path:external_id>")
def unlink(external_id: str):
    g.admin_items = 1
    st = state()
    try:
        removed = links.unlink(st.redis, st.keys, external_id)
    except STORE_ERRORS:
        return _store_unavailable()
    return json_response(200 if removed else 404, {"unlinked": removed})


@bp.post("/identify")
def identify():
    return _each_pair(lambda p, keys, ext, uid: identity.enqueue(p, keys, identity.IDENTIFY, ext, uid), 202, "queued")


@bp.post("/merge")
def merge():
    return _each_pair(lambda p, keys, ext, uid: identity.enqueue(p, keys, identity.MERGE, ext, uid), 202, "queued")


@bp.post("/link-nonces")
def link_nonces():
    doc, err = _items(NonceSchema())
    if err:
        return err
    try:
        items = NonceSchema(many=True).load(doc)
    except ValidationError as e:
        return json_response(400, {"error": "invalid nonce entries", "details": e.messages})
    st = state()
    try:
        p = st.redis.pipeline(transaction=False)
        for it in items:
            identity.register_nonce(p, st.keys, it["nonce"], it["external_id"], it["ttl_seconds"])
        p.execute()
    except STORE_ERRORS:
        return _store_unavailable()
    return json_response(201, {"registered": len(items)})
