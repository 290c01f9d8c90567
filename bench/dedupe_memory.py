"""Redis memory of one remembered webhookEventId (a `{linesync}:seen:<id>` key with a TTL).

    .venv/bin/python bench/dedupe_memory.py [--n 200000]

Starts its own redis-server, writes N marks exactly as the consumer does
(SET NX EX, ids shaped like LINE's 26-character ULIDs) and prints used_memory
per mark.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis  # noqa: E402

from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.keys import Keys  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    keys = Keys()
    with EmbeddedRedis(appendonly=False) as er:
        r = redis.Redis.from_url(er.url)
        before = r.info("memory")["used_memory"]
        p = r.pipeline(transaction=False)
        for i in range(n):
            p.set(keys.seen(f"01J{i:023d}"), "1", nx=True, ex=604800)
            if i % 10_000 == 9_999:
                p.execute()
        p.execute()
        after = r.info("memory")["used_memory"]
        sample = r.memory_usage(keys.seen("01J" + "0" * 23))
        print(f"redis {r.info('server')['redis_version']}: {n:,} dedupe marks, used_memory +{(after - before) / 1e6:.1f} MB "
              f"= {(after - before) / n:.0f} B per mark (MEMORY USAGE of one key: {sample} B)")
        print(f"at 7 days' retention: 1,000 events/s -> {(after - before) / n * 1000 * 604800 / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
