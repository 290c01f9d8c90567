"""workers/page_reader.py: one page always on its way, used only for the token it was asked for."""

from __future__ import annotations

import threading

import pytest

from shared.errors import LineRetryable
from workers.page_reader import PageReader


class Source:
    """Pages of 2 ids, tokens 't1', 't2', … up to ``pages``; records each call and may hold or fail one."""

    def __init__(self, pages=5, fail=None, hold=None):
        self.pages, self.fail, self.hold = pages, fail, hold
        self.calls: list[str | None] = []
        self.asked = threading.Condition()
        self.release = threading.Event()

    def followers_ids(self, start=None, limit=1000):
        with self.asked:
            self.calls.append(start)
            self.asked.notify_all()
        if self.hold is not None and start == self.hold:
            self.release.wait(10)
        if self.fail is not None and start == self.fail:
            raise LineRetryable("HTTP 500")
        k = int(start[1:]) if start else 0
        return [f"U{k}a", f"U{k}b"], (f"t{k + 1}" if k + 1 < self.pages else None)

    def wait_asked(self, token):
        with self.asked:
            assert self.asked.wait_for(lambda: token in self.calls, timeout=10), self.calls


def test_the_next_page_is_asked_for_before_the_caller_comes_back():
    src = Source(hold="t1")  # LINE is slow on page 1
    with PageReader(src) as pages:
        assert pages.page("")[:2] == (["U0a", "U0b"], "t1")
        src.wait_asked("t1")  # already in flight while the caller applies page 0
        src.release.set()
        assert pages.page("t1")[:2] == (["U1a", "U1b"], "t2")
    assert src.calls.count("t1") == 1  # fetched once, used once


def test_a_whole_pass_asks_each_page_once():
    src = Source(pages=5)
    with PageReader(src) as pages:
        token, seen = "", []
        while True:
            ids, nxt, _ = pages.page(token)
            seen += ids
            if not nxt:
                break
            token = nxt
    assert len(seen) == 10 and src.calls == [None, "t1", "t2", "t3", "t4"]


def test_another_token_is_fetched_afresh():
    src = Source()
    with PageReader(src) as pages:
        pages.page("")
        src.wait_asked("t1")
        assert pages.page("")[:2] == (["U0a", "U0b"], "t1")  # a restart from the first page
    assert src.calls.count(None) == 2


def test_a_prefetched_page_s_error_comes_when_that_page_is_asked_for():
    src = Source(fail="t1")
    with PageReader(src) as pages:
        pages.page("")
        with pytest.raises(LineRetryable):
            pages.page("t1")
        src.fail = None
        assert pages.page("t1")[0] == ["U1a", "U1b"]  # the retry asks LINE again


def test_no_fetch_ahead_when_told_not_to():
    src = Source()
    with PageReader(src, ahead_while=lambda: False) as pages:
        pages.page("")
        pages.page("t1")
    assert src.calls == [None, "t1"]
    src = Source()
    with PageReader(src, prefetch=False) as pages:
        pages.page("")
    assert src.calls == [None]


def test_prepare_runs_on_its_own_thread_for_each_page():
    src = Source(pages=3)
    threads = []

    def prepare(ids):
        threads.append(threading.current_thread().name)
        return "+".join(ids)

    with PageReader(src, prepare=prepare) as pages:
        first = pages.page("")
        second = pages.page("t1")
    assert first.prepared == "U0a+U0b" and second.prepared == "U1a+U1b"
    assert threads[0].startswith("line-pages-prep")  # off the caller's thread
    assert threads[1].startswith("line-pages-prep")


def test_prepare_runs_inline_without_prefetch():
    with PageReader(Source(), prefetch=False, prepare=len) as pages:
        assert pages.page("").prepared == 2


def test_the_gil_is_handed_over_often_while_any_reader_fetches_ahead():
    import sys

    from workers.page_reader import SWITCH_INTERVAL

    before = sys.getswitchinterval()
    a = PageReader(Source())
    b = PageReader(Source())
    assert sys.getswitchinterval() == SWITCH_INTERVAL < before
    a.close()
    a.close()
    assert sys.getswitchinterval() == SWITCH_INTERVAL  # b still reads ahead
    b.close()
    assert sys.getswitchinterval() == before
    with PageReader(Source(), prefetch=False):
        assert sys.getswitchinterval() == before  # reads nothing ahead: nothing to hand over for
