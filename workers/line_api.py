"""LINE Messaging API client (the calls the follower resync needs).

One pooled ``requests.Session`` per thread (``requests.Session`` is not
documented thread-safe, and task threads, the resync's and the doctor's calls
may run at once; a forked child builds its own), connect
and read timeouts on every call, and every failure converted at the boundary
into :mod:`shared.errors`' LINE hierarchy:

    403                          → LineForbidden     (account may not use the API; not retried)
    400 "Invalid start param"    → LineExpiredToken  (the paging token expired: start over)
    429, 5xx, timeout, network   → LineRetryable
    any other 4xx                → LineApiError

The exception text carries LINE's error body (``message`` and ``details``)
and the ``X-Line-Request-Id`` (what LINE support asks for), never the token.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from shared.errors import LineApiError, LineExpiredToken, LineForbidden, LineRetryable

log = logging.getLogger(__name__)

FOLLOWERS_PATH = "/v2/bot/followers/ids"
INSIGHT_FOLLOWERS_PATH = "/v2/bot/insight/followers"
# LINE's statistics are per day in Japan's time zone (UTC+9), ready the day after.
_JST = datetime.timezone(datetime.timedelta(hours=9))
BOT_INFO_PATH = "/v2/bot/info"
# LINE's maximum (and default) page size for the followers list.
MAX_LIMIT = 1000
# Give up connecting after this long (s): LINE is down or unreachable.
DEFAULT_CONNECT_TIMEOUT = 3.05
# A page of 1,000 ids is ~35 kB; LINE answers in well under a second (s).
DEFAULT_READ_TIMEOUT = 15.0
# LINE's 400 message for an expired or unknown continuation token.
INVALID_START = "invalid start param"

FORBIDDEN_HINT = (
    "the followers list (GET /v2/bot/followers/ids) is only available to verified or premium "
    "LINE Official Accounts; check the account's plan and badge in LINE Official Account Manager"
)

# Keep-alive connections a thread's session keeps per host.
POOL_SIZE = 2

_local = threading.local()


def shared_session() -> requests.Session:
    """This thread's pooled session, shared by every LineClient the thread uses (a fresh one
    in a forked child, whose copy of the parent's connections is not its own)."""
    s = getattr(_local, "session", None)
    if s is None or _local.pid != os.getpid():
        s = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=POOL_SIZE, max_retries=0)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session, _local.pid = s, os.getpid()
    return s


def error_text(body: str) -> str:
    """LINE's ``{message, details: [{message, property}]}`` as one short line."""
    if not body.strip():
        return "(empty body)"
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip()[:200] or "(empty body)"
    if not isinstance(doc, dict):
        return str(doc)[:200]
    text = str(doc.get("message") or "(no message)")
    details = doc.get("details")
    if isinstance(details, list) and details:
        parts = []
        for d in details[:5]:
            if isinstance(d, dict):
                prop = d.get("property")
                parts.append(f"{prop}: {d.get('message')}" if prop else str(d.get("message")))
        if parts:
            text += " (" + "; ".join(parts) + ")"
    return text[:500]


def classify(path: str, status: int, body: str, request_id: str | None) -> LineApiError:
    """The exception for a non-2xx answer to ``path``. Pure."""
    reason = error_text(body)
    rid = f" [X-Line-Request-Id {request_id}]" if request_id else ""
    if status == 403:
        return LineForbidden(f"LINE refused {path} (HTTP 403: {reason}): {FORBIDDEN_HINT}{rid}",
                             status=status, request_id=request_id)
    if status == 400 and INVALID_START in reason.lower():
        return LineExpiredToken(f"LINE {path}: paging token expired (HTTP 400: {reason}){rid}",
                                status=status, request_id=request_id)
    if status == 429 or status >= 500:
        return LineRetryable(f"LINE {path} answered HTTP {status}: {reason}{rid}",
                             status=status, request_id=request_id)
    hint = " (check LINE_CHANNEL_ACCESS_TOKEN)" if status == 401 else ""
    return LineApiError(f"LINE {path} answered HTTP {status}: {reason}{hint}{rid}",
                        status=status, request_id=request_id)


class LineClient:
    """``followers_ids``, ``friends_estimate`` and ``bot_info`` against ``base_url`` with a channel access token."""

    def __init__(self, base_url: str, access_token: str, *, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 read_timeout: float = DEFAULT_READ_TIMEOUT, session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._session = session  # None: the calling thread's own (shared_session)
        # Per-request header (not on the shared session): the token stays with this client.
        self._headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}

    @property
    def session(self) -> requests.Session:
        """The session this call goes through: the one given, else the calling thread's."""
        return self._session if self._session is not None else shared_session()

    def __repr__(self) -> str:  # never show the token
        return f"LineClient({self.base_url!r})"

    def _get(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        try:
            resp = self.session.get(self.base_url + path, params=params, headers=self._headers, timeout=self.timeout)
        except requests.Timeout as e:
            raise LineRetryable(f"LINE {path}: timed out ({type(e).__name__})") from e
        except requests.RequestException as e:
            # The exception text may contain the URL (with the start token) but never headers.
            raise LineRetryable(f"LINE {path}: {type(e).__name__} (connection problem)") from e
        if resp.status_code >= 400:
            err = classify(path, resp.status_code, resp.text, resp.headers.get("X-Line-Request-Id"))
            log.warning("%s", err)
            raise err
        return resp

    def _json(self, path: str, resp: requests.Response) -> dict[str, Any]:
        try:
            doc = resp.json()
        except ValueError as e:
            raise LineRetryable(f"LINE {path}: answer is not JSON (HTTP {resp.status_code})",
                                status=resp.status_code,
                                request_id=resp.headers.get("X-Line-Request-Id")) from e
        if not isinstance(doc, dict):
            raise LineRetryable(f"LINE {path}: answer is not a JSON object", status=resp.status_code)
        return doc

    def followers_ids(self, start: str | None = None, limit: int = MAX_LIMIT) -> tuple[list[str], str | None]:
        """One page of follower ids and the continuation token (None on the last page)."""
        params: dict[str, Any] = {"limit": limit}
        if start:
            params["start"] = start
        resp = self._get(FOLLOWERS_PATH, params)
        doc = self._json(FOLLOWERS_PATH, resp)
        ids = doc.get("userIds")
        if not isinstance(ids, list):
            raise LineRetryable(f"LINE {FOLLOWERS_PATH}: answer has no userIds list", status=resp.status_code)
        nxt = doc.get("next")
        return [u for u in ids if isinstance(u, str) and u], (nxt if isinstance(nxt, str) and nxt else None)

    def friends_estimate(self, at: float) -> int | None:
        """How many friends the account had the day before ``at`` (epoch seconds), by LINE's statistics:
        ``followers - blocks``; None while LINE has no figure for that day. Only an estimate (a resync
        sizes its storage by it): LINE errors are raised as usual."""
        day = (datetime.datetime.fromtimestamp(at, _JST) - datetime.timedelta(days=1)).strftime("%Y%m%d")
        doc = self._json(INSIGHT_FOLLOWERS_PATH, self._get(INSIGHT_FOLLOWERS_PATH, {"date": day}))
        followers, blocks = doc.get("followers"), doc.get("blocks") or 0
        if doc.get("status") != "ready" or not isinstance(followers, int) or not isinstance(blocks, int):
            return None
        return max(0, followers - blocks)

    def bot_info(self) -> dict[str, Any]:
        """The bot's ``userId``, ``basicId``, ``displayName``… (a cheap check that the token works)."""
        return self._json(BOT_INFO_PATH, self._get(BOT_INFO_PATH))
