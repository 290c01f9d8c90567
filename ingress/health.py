"""``/healthz`` (the process answers) and ``/readyz`` (and so does Redis)."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, Response

from shared.errors import StoreUnavailable
from shared.redis_conn import ping

from ingress.state import current, json_response

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return json_response(200, {"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    try:
        ping(current().redis)
    except (StoreUnavailable, redis.RedisError) as e:
        log.warning("not ready: Redis did not answer (%s)", e.__cause__ or e)
        return json_response(503, {"status": "unavailable", "error": "redis did not answer"})
    return json_response(200, {"status": "ok"})
