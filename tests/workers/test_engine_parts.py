"""The engine's parts, each on its own: presence, exporter election, delivery summary."""

import logging

from shared.clock import FakeClock
from workers.exporter import ExporterElection
from workers.presence import Presence
from workers.summary import DeliverySummary


def test_presence_registers_renews_and_leaves(r, keys):
    clock = FakeClock(1_700_000_000.0)
    p = Presence(r, keys, clock, "h:1:abc")
    p.register()
    assert r.exists(keys.worker("h:1:abc")) and r.zscore(keys.workers, "h:1:abc") == 1_700_000_000_000
    assert p.is_alive("h:1:abc") and not p.is_alive("gone:2:def") and not p.is_alive("")
    clock.sleep(5)
    r.delete(keys.worker("h:1:abc"))  # lapsed during an outage: taken again
    p.renew()
    assert r.exists(keys.worker("h:1:abc")) and r.zscore(keys.workers, "h:1:abc") == 1_700_000_005_000
    other = Presence(r, keys, clock, "h:2:xyz")
    assert other.is_alive("h:1:abc")
    p.leave()
    assert not other.is_alive("h:1:abc") and r.zscore(keys.workers, "h:1:abc") is None


def test_one_exporter_at_a_time_and_the_next_takes_over(r, keys):
    a, b = ExporterElection(r, keys, "a"), ExporterElection(r, keys, "b")
    a.claim()
    b.claim()
    assert a.exporting and not b.exporting
    assert r.get(keys.metrics_exporter).decode() == a.token
    a.release()
    assert not a.exporting and not r.exists(keys.metrics_exporter)
    b.claim()
    assert b.exporting


def test_the_summary_logs_once_per_period_and_only_when_something_was_delivered(caplog):
    now, counts = [0.0], [(0, 0)]
    s = DeliverySummary(lambda: counts[0], every=60, monotonic=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="workers.summary"):
        counts[0] = (2, 150)
        now[0] = 30
        s.tick()
        assert not caplog.records
        now[0] = 60
        s.tick()
        assert [rec.getMessage() for rec in caplog.records] == [
            "delivered 150 objects to Braze in 2 requests in the last 60 s (2 objects/s)"]
        now[0] = 120
        s.tick()  # nothing new
        assert len(caplog.records) == 1
