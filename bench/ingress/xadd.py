"""Client CPU of one webhook XADD: redis-py's command layer vs the ingress's pre-packed path.

    .venv/bin/python bench/ingress/xadd.py [--count 20000]

Starts its own embedded Redis and writes a 358-byte body ``count`` times with

- ``redis-py xadd``:   ``shared.webhook_queue.enqueue`` on a client pinned to one connection
- ``enqueue_pinned``: the ingress's path (one pre-packed XADD on that connection)

from one thread, then from eight (as one gunicorn worker's threads do), and
prints wall time and this process's CPU per write. Not a test.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.keys import Keys  # noqa: E402
from shared.webhook_queue import enqueue, enqueue_pinned  # noqa: E402

BODY = b"x" * 358


def run(write, threads: int, count: int) -> tuple[float, float]:
    """(wall µs, process CPU µs) per write, ``count`` writes spread over ``threads``."""
    workers = [threading.Thread(target=lambda: [write() for _ in range(count // threads)]) for _ in range(threads)]
    wall, cpu = time.perf_counter(), time.process_time()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return (time.perf_counter() - wall) / count * 1e6, (time.process_time() - cpu) / count * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=20_000)
    args = ap.parse_args()
    server = EmbeddedRedis().start()
    keys = Keys("bench")
    local = threading.local()

    def pinned_client() -> redis.Redis:
        if not hasattr(local, "client"):
            local.client = redis.Redis.from_url(server.url, single_connection_client=True)
        return local.client

    paths = {
        "redis-py xadd": lambda: enqueue(pinned_client(), keys, BODY),
        "enqueue_pinned": lambda: enqueue_pinned(pinned_client().connection, keys, BODY),
    }
    try:
        print(f"{'path':<16} {'threads':>7} {'wall us/write':>14} {'CPU us/write':>13}")
        for threads in (1, 8):
            for name, write in paths.items():
                run(write, threads, args.count // 10)  # warm-up
                wall, cpu = run(write, threads, args.count)
                print(f"{name:<16} {threads:>7} {wall:>14.1f} {cpu:>13.1f}")
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
