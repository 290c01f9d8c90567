"""LINE's follower pages in order, the next one always on its way while the caller works on the last.

LINE pages followers 1,000 at a time and each page needs the previous page's
``next`` token, so a pass can never beat LINE's page latency; what it can do
is never wait for anything else. :class:`PageReader` hands out page ``k``
and at once starts fetching page ``k + 1`` on one background thread (one
page of prefetch: memory stays at two pages), so applying a page to Redis
costs no time as long as it is quicker than LINE's answer.

A prefetched answer is used only for the token it was asked for (a restart
from the first page or a retry of another token fetches afresh); a LINE
error of a prefetched page is raised when that page is asked for, exactly
as if it had been fetched then.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

# LINE's maximum page size.
PAGE_LIMIT = 1000

Page = tuple[list[str], str | None]


class FollowerSource(Protocol):
    def followers_ids(self, start: str | None = None, limit: int = PAGE_LIMIT) -> tuple[list[str], str | None]:
        ...


class PageReader:
    """Pages of ``source`` by token ('' = the first page), one page fetched ahead. Close it when done."""

    def __init__(self, source: FollowerSource, *, limit: int = PAGE_LIMIT, prefetch: bool = True,
                 ahead_while: Callable[[], bool] = lambda: True):
        self.source = source
        self.limit = limit
        # Fetch ahead only while this holds (e.g. the chunk still has time to use the page).
        self._ahead_while = ahead_while
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="line-pages") if prefetch else None
        self._ahead: tuple[str, Future[Page]] | None = None

    def page(self, start: str) -> Page:
        """(ids, next token or None) of the page at ``start``; starts fetching the page after it."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == start:
            ids, nxt = ahead[1].result()
        else:
            if ahead is not None:
                ahead[1].cancel()
            ids, nxt = self.source.followers_ids(start or None, self.limit)
        if nxt and self._pool is not None and self._ahead_while():
            self._ahead = (nxt, self._pool.submit(self.source.followers_ids, nxt, self.limit))
        return ids, nxt

    def close(self) -> None:
        """Stop fetching ahead (a page in flight is left to finish on its own, unused)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._ahead = None

    def __enter__(self) -> PageReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
