"""LINE's follower pages in order, the next one always on its way while the caller works on the last.

LINE pages followers 1,000 at a time and each page needs the previous page's
``next`` token, so a pass can never beat LINE's page latency; what it can do
is never wait for anything else. :class:`PageReader` hands out page ``k``
and page ``k + 1`` is already on its way on one background thread (one page
of prefetch): requested the moment page ``k`` arrived if the caller was
already waiting for it, else the moment the caller takes page ``k``. So
applying a page to Redis costs no time as long as it is quicker than LINE's
answer, and memory stays at a few pages.

A prefetched answer is used only for the token it was asked for (a restart
from the first page or a retry of another token fetches afresh); a LINE
error of a prefetched page is raised when that page is asked for, exactly
as if it had been fetched then. An optional ``prepare(ids)`` (the caller's
work that depends only on the ids) runs on a second thread as soon as a
prefetched page arrives, while the caller still works on the page before.

While a reader fetches ahead, the interpreter hands the GIL over every
:data:`SWITCH_INTERVAL` s instead of Python's 5 ms: the fetching thread,
whose page just arrived or who must send the next request, then waits at most
that long behind the packing of the last page (a page's round trip is the
pass's pace, so each wait would add to it). The first reader open lowers it,
the last one closed puts the process's value back.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

# LINE's maximum page size.
PAGE_LIMIT = 1000
# The GIL switch interval (s) while any reader fetches ahead.
SWITCH_INTERVAL = 0.0005


class _SwitchInterval:
    """The process's GIL switch interval, lowered while at least one holder has it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved = 0.0

    def hold(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, SWITCH_INTERVAL))
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                sys.setswitchinterval(self._saved)


_switch = _SwitchInterval()


class Page(NamedTuple):
    ids: list[str]
    next: str | None          # the token of the page after it; None = the last page
    prepared: Any = None      # what ``prepare(ids)`` made of it


_Fetched = tuple[list[str], str | None, "Future[Any] | None"]


class FollowerSource(Protocol):
    def followers_ids(self, start: str | None = None, limit: int = PAGE_LIMIT) -> tuple[list[str], str | None]:
        ...

    def friends_estimate(self, at: float) -> int | None:
        """How many followers there are about (None: not known)."""
        ...


class PageReader:
    """Pages of ``source`` by token ('' = the first page), one page fetched ahead. Close it when done."""

    def __init__(self, source: FollowerSource, *, limit: int = PAGE_LIMIT, prefetch: bool = True,
                 ahead_while: Callable[[], bool] = lambda: True, prepare: Callable[[list[str]], Any] | None = None):
        self.source = source
        self.limit = limit
        # Work on a page's ids (e.g. packing its Redis writes) done on a thread of its own as soon as the page
        # arrives, so neither the caller nor the next page's request waits for it.
        self._prepare = prepare
        # Fetch ahead only while this holds (e.g. the chunk still has time to use the page).
        self._ahead_while = ahead_while
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="line-pages") if prefetch else None
        self._prep = ThreadPoolExecutor(1, thread_name_prefix="line-pages-prep") if prefetch and prepare else None
        self._ahead: tuple[str, Future[_Fetched]] | None = None
        self._asked: str | None = None  # the token the caller is waiting for
        self._lock = threading.Lock()
        if self._pool is not None:
            _switch.hold()

    def page(self, start: str) -> Page:
        """The page at ``start``; the page after it is requested before this returns."""
        with self._lock:
            ahead, self._ahead = self._ahead, None
            if ahead is not None and ahead[0] == start:
                self._asked = start  # the fetching thread may request the next page itself, the moment it has this one
            elif ahead is not None:
                ahead[1].cancel()
                ahead = None
        try:
            ids, nxt, prepared = ahead[1].result() if ahead is not None else self._fetch(start)
        finally:
            with self._lock:
                self._asked = None
        with self._lock:
            if self._ahead is None and nxt:  # not already requested by the fetching thread
                self._fetch_ahead(nxt)
        if isinstance(prepared, Future):
            prepared = prepared.result()
        elif self._prepare is not None and ids and prepared is None:
            prepared = self._prepare(ids)
        return Page(ids, nxt, prepared)

    def _fetch(self, start: str) -> _Fetched:
        ids, nxt = self.source.followers_ids(start or None, self.limit)
        if nxt:
            with self._lock:
                if self._asked == start and self._ahead is None:  # the caller waits for this page: go on at once
                    self._fetch_ahead(nxt)
        return ids, nxt, self._prep.submit(self._prepare, ids) if self._prep is not None and ids else None

    def _fetch_ahead(self, start: str) -> None:
        """Request the page at ``start`` in the background (caller holds the lock)."""
        if self._pool is not None and self._ahead_while():
            self._ahead = (start, self._pool.submit(self._fetch, start))

    def close(self) -> None:
        """Stop fetching ahead (a page in flight is left to finish on its own, unused)."""
        with self._lock:
            pools, self._pool, self._prep = (self._pool, self._prep), None, None
            self._ahead = None
        if pools[0] is not None:
            _switch.release()
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> PageReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
