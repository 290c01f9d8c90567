"""Redis time of the delivery scripts alone: claim and finish, nothing sent.

    .venv/bin/python bench/delivery/scripts.py [--profiles 100000] [--split] [--open 1] [--repeat 1]

Starts its own embedded Redis (no persistence), loads N dirty profiles with a
resync pass in this process (``workers.resync.Resync.run_chunk`` over
generated follower ids, as bench/resync/run.py --line memory does), then
claims batches of 75 and finishes each at once (``shared.outbox.claim`` and
``finish_and_claim``, as a sender does, without Braze, the limiter or other
senders) until the outbox is empty. ``--split`` claims every batch first, then
finishes them all, to tell the two scripts apart. ``--open K`` keeps K batches
open (claimed, not yet finished: their users in flight), as K senders do: each
finish of the oldest is pipelined with the next claim.

Prints, per profile: the ``EVALSHA`` time (``INFO commandstats``: wall time
inside the scripts) and the Redis server's CPU over the loop. What
bench/delivery/run.py adds on top: the limiter (one script per request),
several senders claiming at once, and the machine's other work. Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import deque
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from sandboxes.line_followers import MemoryFollowers  # noqa: E402
from shared import outbox  # noqa: E402
from shared.clock import SystemClock, now_ms  # noqa: E402
from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.keys import Keys  # noqa: E402
from workers import resync  # noqa: E402

BATCH = 75


def redis_cpu(r: redis.Redis) -> float:
    cpu = r.info("cpu")
    if "used_cpu_user_main_thread" in cpu:
        return float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def measure(r: redis.Redis, name: str, run) -> None:
    r.config_resetstat()
    cpu0 = redis_cpu(r)
    profiles = run()
    cpu = redis_cpu(r) - cpu0
    ev = r.info("commandstats").get("cmdstat_evalsha", {})
    n = max(1, profiles)
    print(f"  {name}: {profiles:,} profiles, EVALSHA {ev.get('usec', 0) / n:.2f} µs per profile "
          f"({ev.get('calls', 0):,} calls x {float(ev.get('usec_per_call', 0)):.0f} µs); "
          f"Redis CPU {cpu / n * 1e6:.2f} µs per profile")


def one_pass(profiles: int, split: bool, open_batches: int = 1) -> None:
    server = EmbeddedRedis(appendonly=False).start()
    try:
        r = redis.Redis.from_url(server.url, socket_timeout=30)
        keys, clock = Keys(), SystemClock()
        resync.start(r, keys, reason="bench", now_ms=now_ms(clock), mark_missing=False)
        t0 = time.perf_counter()
        resync.Resync(r, keys, MemoryFollowers(profiles), clock, run_seconds=24 * 3600).run_chunk()
        print(f"  {profiles:,} dirty profiles loaded by a resync pass in {time.perf_counter() - t0:.2f} s")
        later = now_ms(clock) + 10_000  # every profile due

        def claim() -> outbox.Batch | outbox.Wait:
            return outbox.claim(r, keys, now_ms=later, max_objects=BATCH, flush_delay_ms=0,
                                max_open=profiles // BATCH + 10)

        if split:
            batches: list[outbox.Batch] = []

            def claims() -> int:
                while isinstance(b := claim(), outbox.Batch):
                    batches.append(b)
                return sum(len(b.items) for b in batches)

            def finishes() -> int:
                for b in batches:
                    outbox.finish(r, keys, b, delivered=len(b.items), now_ms=later)
                return sum(len(b.items) for b in batches)

            measure(r, "claim", claims)
            measure(r, "finish", finishes)
        else:
            def both() -> int:
                done, held = 0, deque()
                while len(held) < open_batches and isinstance(b := claim(), outbox.Batch):
                    held.append(b)
                while held:
                    b = held.popleft()
                    done += len(b.items)
                    _, nxt = outbox.finish_and_claim(r, keys, b, delivered=len(b.items), now_ms=later,
                                                     max_objects=BATCH, flush_delay_ms=0)
                    if isinstance(nxt, outbox.Batch):
                        held.append(nxt)
                return done

            measure(r, f"claim and finish ({open_batches} open)" if open_batches > 1 else "claim and finish", both)
    finally:
        server.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", type=int, default=100_000)
    ap.add_argument("--split", action="store_true", help="claim every batch first, then finish them all")
    ap.add_argument("--open", type=int, default=1, help="batches kept open at once (as that many senders)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"delivery scripts alone: {args.profiles:,} profiles, batches of {BATCH}; "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    for _ in range(args.repeat):
        one_pass(args.profiles, args.split, args.open)
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
