from shared.clock import FakeClock
from shared.lease import Lease
from workers import pumps


def test_one_loop_per_slot(r, keys):
    clock = FakeClock()
    a = Lease(r, keys.pump_lease("deliver", 0), 15_000)
    b = Lease(r, keys.pump_lease("deliver", 0), 15_000)
    steps = []

    def step():
        steps.append(pumps.run(b, lambda: 0.0, clock, run_seconds=1))  # a second loop tries meanwhile
        return 0.5

    assert pumps.run(a, step, clock, run_seconds=1) == "done"
    assert steps == ["busy", "busy"]
    assert a.holder() is None  # released


def test_errors_in_a_step_do_not_end_the_loop(r, keys):
    clock = FakeClock()
    calls = []

    def step():
        calls.append(1)
        raise RuntimeError("boom")

    assert pumps.run(Lease(r, keys.pump_lease("consume", 0), 15_000), step, clock, run_seconds=3) == "done"
    assert len(calls) == 3  # one per ERROR_SLEEP second


def test_stop_flag_ends_the_loop(r, keys):
    assert pumps.run(Lease(r, keys.pump_lease("consume", 0), 15_000), lambda: 0.1, FakeClock(),
                     stop=lambda: True) == "stopped"


def test_kick_wakes_free_slots_once(r, keys):
    Lease(r, keys.pump_lease("deliver", 1), 15_000).take()  # a live loop
    woken = pumps.slots_to_wake(r, keys, {"consume": 1, "deliver": 3})
    assert woken == [("consume", 0), ("deliver", 0), ("deliver", 2)]
    assert pumps.slots_to_wake(r, keys, {"consume": 1, "deliver": 3}) == []  # already queued
