"""Redis memory per follower (at the peak of a first sync and at rest) and per remembered event id.

    .venv/bin/python bench/memory.py [--followers 1000000] [--event-ids 1000000] [--chunk 1000] [--no-estimate]

Starts its own redis-server (no persistence: memory only) and runs a first sync
the way the pipeline does, without LINE or Braze:

1. the state pass: N followers (ids as LINE's: "U" + 32 hex) applied through
   shared.state.apply_page, 1,000 per call, as a resync run writes its pages
   (workers/resync.py: buckets made ahead for N, as when LINE gives its count of
   friends; ``--no-estimate``: grown as followers come); every one becomes dirty in the outbox.
   ``used_memory`` here is the peak: every follower's state plus the outbox.
2. delivery: the outbox drained by claiming and finishing batches of 75
   (shared/outbox.py, the scripts the senders run; nothing is sent).
   ``used_memory`` now is at rest. Also printed: the claim and finish scripts'
   Redis time per profile (INFO commandstats: wall time, inflated on a busy machine).
3. dedupe: M webhookEventIds (26-character ULIDs) applied as events with no
   state change; bytes per remembered id.

Prints bytes per follower (peak, rest) and per event id, against the targets
(rest <= 40 B, peak <= 2x rest, an id <= 32 B). Not a test: figures, on this machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from shared import migrate, outbox, state  # noqa: E402
from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.events import make_version  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.state import Change  # noqa: E402

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TTL = 7 * 24 * 3600


def follower(i: int) -> str:
    return "U" + hashlib.md5(str(i).encode()).hexdigest()


def ulid(i: int, now_ms: int) -> str:
    rnd = int.from_bytes(hashlib.sha1(str(i).encode()).digest()[:10], "big")
    v = (now_ms << 80) | rnd
    return "".join(CROCKFORD[(v >> (5 * k)) & 31] for k in range(25, -1, -1))


def script_time(r: redis.Redis) -> tuple[int, int]:
    """(µs, calls) of EVALSHA since the last CONFIG RESETSTAT (INFO commandstats; wall time)."""
    s = r.info("commandstats").get("cmdstat_evalsha", {})
    return int(s.get("usec", 0)), int(s.get("calls", 0))


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--followers", type=int, default=1_000_000)
    ap.add_argument("--event-ids", type=int, default=1_000_000)
    ap.add_argument("--chunk", type=int, default=1000)
    ap.add_argument("--no-estimate", action="store_true",
                    help="grow the state's buckets as followers come (as without LINE's count of friends)")
    args = ap.parse_args()
    n, m, keys = args.followers, args.event_ids, Keys()
    with EmbeddedRedis(appendonly=False) as er:
        r = redis.Redis.from_url(er.url, socket_timeout=120)
        version = redis.Redis.from_url(er.url).info("server")["redis_version"]
        migrate.run(r, keys, now_ms=int(time.time() * 1000), dedupe_ttl=TTL)  # as a worker's start: nothing to move
        base = used(r)
        start = int(time.time() * 1000)
        r.config_resetstat()
        t0 = time.perf_counter()
        for i in range(0, n, args.chunk):
            now = int(time.time() * 1000)
            state.apply_page(r, keys, [follower(j) for j in range(i, min(n, i + args.chunk))], "S", timestamp=start,
                             now_ms=now, bucket_count=int(r.hget(keys.state_meta, "buckets") or 1),
                             reserve=0 if args.no_estimate else n)
        pass_s = time.perf_counter() - t0
        pass_us = script_time(r)[0]
        peak = used(r) - base
        sizes = outbox.sizes(r, keys)
        t0 = time.perf_counter()
        batches = 0
        r.config_resetstat()
        while True:
            got = outbox.claim(r, keys, now_ms=int(time.time() * 1000), max_objects=75, flush_delay_ms=0)
            if isinstance(got, outbox.Wait):
                break
            outbox.finish(r, keys, got, delivered=len(got.items), now_ms=int(time.time() * 1000))
            batches += 1
        drain_s = time.perf_counter() - t0
        script_us, script_calls = script_time(r)
        rest = used(r) - base
        before = used(r)
        r.config_resetstat()
        for i in range(0, m, args.chunk):
            now = int(time.time() * 1000)
            state.apply(r, keys, [Change("U" + "0" * 32, make_version(now, now, 0, 0), "", ulid(j, now))
                                  for j in range(i, min(m, i + args.chunk))],
                        now_ms=now, dedupe_ttl=TTL)
        per_id = (used(r) - before) / max(1, m)
        event_us = script_time(r)[0]
        print(f"memory benchmark: Redis {version}, {n:,} followers, {m:,} event ids; "
              f"load {os.getloadavg()[0]:.1f}")
        print(f"  state pass {pass_s:.1f} s ({n / pass_s:,.0f} followers/s, {pass_us / n:.1f} µs of Redis time in "
              f"the state scripts per follower); outbox then {sizes}")
        print(f"  delivery drain (claim + finish, nothing sent) {drain_s:.1f} s, {batches:,} batches; Redis time in "
              f"the scripts {script_us / n:.1f} µs per profile ({script_calls:,} calls, {script_us / max(1, script_calls):.0f} "
              f"µs each; INFO commandstats)")
        print(f"  used_memory per follower: peak {peak / n:.1f} B (target <= {2 * 40}), at rest {rest / n:.1f} B "
              f"(target <= 40)")
        print(f"  used_memory per remembered event id: {per_id:.1f} B (target <= 32); {event_us / max(1, m):.1f} µs of "
              f"Redis time in apply_events per event (dedupe, no state change)")
        ok = rest / n <= 40 and peak <= 2 * rest and per_id <= 32
        print(f"result: {'PASS' if ok else 'MISS'}")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
