"""The LINE sandbox's followers: ``GET /v2/bot/followers/ids``, its paging tokens and the follower list.

Followers are either an explicit list or a count ``N``, meaning the ids
``follower_id(0) … follower_id(N-1)`` (``"U" + md5(str(i))``), generated per
page so a million followers cost no memory. ``add``/``remove`` changes are kept
as an appended list and a removed set, so positions never shift while a pass
is paging (a removed follower just leaves its page one id shorter).

Paging tokens are opaque: base64url of ``offset:page:issued_at`` plus an HMAC
under a per-instance secret, so they can't be forged, and they expire
``token_ttl_seconds`` after they were issued (``400 Invalid start param``).
Page index 0 is the request without ``start``.

The followers faults (``forbidden``, ``fail_pages``, ``expire_tokens``) are
applied here; ``page_time_ms`` is slept by :meth:`sandboxes.line.LineSandbox.handle`
outside the lock. A mixin of :class:`sandboxes.line.LineSandbox`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from typing import Any, Callable, Iterator

from sandboxes.line_faults import LineFaults
from sandboxes.server import Request, Response

# LINE's documented maximum (and default) page size.
MAX_PAGE_SIZE = 1000
# A continuation token is valid this long after it is issued.
DEFAULT_TOKEN_TTL_SECONDS = 24 * 3600
_SIG_BYTES = 12

FOLLOWERS = "/v2/bot/followers/ids"
# LINE's statistics of friends for one day (JST): "followers" (ever added), "blocks", "targetedReaches".
INSIGHT_FOLLOWERS = "/v2/bot/insight/followers"
INVALID_DATE = "The value for the 'date' parameter is invalid"
FORBIDDEN = "Access to this API is not available for your account"
INVALID_START = "Invalid start param"


def follower_id(i: int) -> str:
    """The ``i``-th generated follower id."""
    return "U" + hashlib.md5(str(i).encode()).hexdigest()


class MemoryFollowers:
    """The generated follower list served in-process, as the LINE client's ``followers_ids`` (benches).

    Pages of ``limit`` ids (``follower_id(0)``, ``follower_id(1)``, ...); the token is the offset.
    ``made_ahead``: every id made at once here (~80 B each), so serving a page costs a slice, not
    a hash per id (a bench that times linesync's own work then times none of LINE's).
    """

    def __init__(self, followers: int, *, made_ahead: bool = False):
        self.followers = followers
        self._ids = [follower_id(i) for i in range(followers)] if made_ahead else None

    def friends_estimate(self, at: float) -> int | None:
        return self.followers

    def followers_ids(self, start: str | None = None, limit: int = 1000) -> tuple[list[str], str | None]:
        lo = int(start or 0)
        hi = min(self.followers, lo + limit)
        ids = self._ids[lo:hi] if self._ids is not None else [follower_id(i) for i in range(lo, hi)]
        return ids, (str(hi) if hi < self.followers else None)


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


class InvalidToken(Exception):
    pass


class FollowersApi:
    """The follower list in-process, the paging tokens and the followers page (uses the
    sandbox's lock, faults, token secret and TTL, page counters and ``_reply``)."""

    _lock: threading.RLock
    _faults: LineFaults
    _followers: _Followers
    _secret: bytes
    _pages: int
    _ids_served: int
    _now: Callable[[], float]
    token_ttl_seconds: float

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

    def _insight_followers(self, request: Request) -> Response:
        """The day's statistics: every follower counts as added and none as blocked (any valid day)."""
        if self._faults.forbidden:
            return self._reply(INSIGHT_FOLLOWERS, 403, {"message": FORBIDDEN})
        date = request.query.get("date") or ""
        if len(date) != 8 or not date.isdigit():
            return self._reply(INSIGHT_FOLLOWERS, 400, {"message": INVALID_DATE})
        count = self._followers.count()
        return self._reply(INSIGHT_FOLLOWERS, 200, {"status": "ready", "followers": count,
                                                    "targetedReaches": count, "blocks": 0})

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
