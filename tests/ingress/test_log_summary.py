"""ingress/log_summary.py: counts in between, one summary per interval at most (fake clock)."""

from __future__ import annotations

import threading

from ingress.log_summary import LogSummary, Summary


def test_the_first_is_logged_at_once_then_one_summary_per_interval_with_the_counts_between():
    now = [100.0]
    s = LogSummary(interval=60, clock=lambda: now[0])
    assert s.note("missing") == Summary({"missing": 1}, 0.0)
    for i in range(400):
        now[0] += 0.125
        assert s.note("wrong" if i % 5 else "missing") is None  # 50 s: no line
    now[0] += 10
    summary = s.note("wrong")
    assert summary == Summary({"wrong": 321, "missing": 80}, 60.0) and summary.total == 401
    now[0] += 600  # a quiet spell: the next occurrence is summed alone, over the whole spell
    assert s.note("missing") == Summary({"missing": 1}, 600.0)


def test_nothing_is_lost_across_threads():
    now = [0.0]
    s = LogSummary(interval=60, clock=lambda: now[0])
    seen: list[Summary] = []
    lock = threading.Lock()

    def hammer() -> None:
        for _ in range(2000):
            got = s.note("x")
            if got:
                with lock:
                    seen.append(got)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    now[0] += 60
    seen.append(s.note("x"))
    assert sum(x.total for x in seen) == 8001 and len(seen) == 2
