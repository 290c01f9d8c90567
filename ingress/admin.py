"""Token-protected admin endpoints for identity reconciliation (SPEC §6).

All under ``/v1/``, all need ``Authorization: Bearer <LINESYNC_ADMIN_TOKEN>``
(compared in constant time). With the variable unset the endpoints are off:
they answer 404 as if absent.

  POST   /v1/links            [{"external_id", "line_user_id"}, ...]  link pairs
  DELETE /v1/links/<external_id>                                        unlink
  POST   /v1/identify         [{"external_id", "line_user_id"}, ...]  queue /users/identify
  POST   /v1/merge            [{"external_id", "line_user_id"}, ...]  queue /users/merge
  POST   /v1/link-nonces      {"nonce", "external_id", "ttl_seconds"?} or a list of them
"""

from __future__ import annotations

import hmac
import time

import redis
from flask import Blueprint, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from ingress.state import current as state, json_response
from shared import identity, links
from shared.redis_conn import REDIS_DOWN

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
    token = state().settings.admin_token
    if not token:
        return json_response(404, {"error": "not found"})
    given = request.headers.get("Authorization", "")
    expected = f"Bearer {token}"
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return json_response(401, {"error": "unauthorized"})
    return None


def _items(schema: Schema):
    doc = request.get_json(silent=True)
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc:
        return None, json_response(400, {"error": "expected a JSON object or a non-empty list of objects"})
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
    now = int(time.time() * 1000)
    return _each_pair(lambda p, keys, ext, uid: links.link(p, keys, ext, uid, now_ms=now), 200, "linked")


@bp.delete("/links/<path:external_id>")
def unlink(external_id: str):
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
