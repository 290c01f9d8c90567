"""Consumer groups of linesync's streams, created once, idempotently."""

from __future__ import annotations

import redis

from shared.keys import STREAM_GROUP


def ensure_group(r: redis.Redis, stream: str, group: str = STREAM_GROUP) -> None:
    """Create ``group`` on ``stream`` (and the stream) if missing. Safe to call often.

    Redis refuses XGROUP CREATE when it is at maxmemory even if the group exists;
    a group that exists is all a caller needs, so that is checked before failing.
    """
    try:
        r.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" in str(e):
            return
        try:
            if any(g["name"] in (group, group.encode()) for g in r.xinfo_groups(stream)):
                return
        except redis.ResponseError:
            pass
        raise
