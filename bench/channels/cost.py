"""What 100 channels cost: per webhook in the ingress, and idle in a worker process.

    .venv/bin/python bench/channels/cost.py [--channels 100] [--requests 5000] [--idle-seconds 10]

Ingress: the WSGI app of ``create_app`` (the webhook dispatcher in front, as under gunicorn)
called directly in this process with signed one-follow bodies, for the channel ``default`` of a
one-channel deployment (no channels file) and for channel ``c<last>`` of a ``--channels``
deployment: microseconds per request (median of 5 rounds), the same Redis (embedded, AOF on).

Worker: an engine serving ``--channels`` channels (``LINESYNC_DELIVERY_CONCURRENCY`` 64), idle
for ``--idle-seconds``: its threads, this process's CPU seconds and Redis commands per second
while nothing happens, against the same for one channel.

Not a test: the figures depend on the machine (everything shares it).
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis  # noqa: E402

from ingress import create_app  # noqa: E402
from sandboxes.braze import BrazeSandbox  # noqa: E402
from shared import channels  # noqa: E402
from shared.config import Settings  # noqa: E402
from shared.embedded_redis import EmbeddedRedis  # noqa: E402
from shared.signature import sign  # noqa: E402

TABLE = """
[channels.{name}]
line_channel_secret = "secret-{name}"
line_channel_access_token = "t"
braze_rest_endpoint = "{url}"
braze_api_key = "k"
braze_subscription_group_id = "sg-{name}"
"""


def table(n: int, url: str = "https://rest.iad-01.braze.com") -> str:
    return "".join(TABLE.format(name=f"c{i}", url=url) for i in range(n))


def ingress_us(app, path: str, secret: str, n: int) -> float:
    raw = json.dumps({"destination": "Ubot", "events": [{"type": "follow", "timestamp": 1, "mode": "active",
                                                         "source": {"type": "user", "userId": "U" + "a" * 32}}]})
    body = raw.encode()
    sig = sign(secret, body)
    statuses = []

    def start_response(status, headers):
        statuses.append(status)

    rounds = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n):
            env = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "HTTP_X_LINE_SIGNATURE": sig, "CONTENT_TYPE": "application/json"}
            app(env, start_response)
        rounds.append((time.perf_counter() - t) / n * 1e6)
    assert set(statuses) == {"200 OK"}, set(statuses)
    return statistics.median(rounds)


def idle_worker(url: str, settings: Settings, seconds: float) -> tuple[int, float, float]:
    from workers import lanes, runtime
    from workers.engine import Engine

    r = redis.Redis.from_url(url)
    rt = runtime.build(settings)
    ls = lanes.of(rt)
    before = threading.active_count()
    eng = (Engine(rt, lanes=[(ln.name, ln.rt, ()) for ln in ls]) if ls else Engine(rt)).start()
    try:
        time.sleep(3)  # groups made, loops settled
        threads = threading.active_count() - before
        cmds0 = int(r.info("stats")["total_commands_processed"])
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(seconds)
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cmds1 = int(r.info("stats")["total_commands_processed"])
    finally:
        eng.stop()
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    return threads, cpu / seconds, (cmds1 - cmds0) / seconds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    a = ap.parse_args()
    server = EmbeddedRedis().start()
    braze = BrazeSandbox(api_key="k").start()
    try:
        one = Settings(redis_url=server.url, line_channel_secret="secret-default", worker_metrics_port=0,
                       braze_rest_endpoint=braze.url, braze_api_key="k", braze_subscription_group_id="sg",
                       resync_on_start=False)
        base = one.replace(line_channel_secret=None, channels_file="bench")
        many = base.replace(channel_table=channels.parse(table(a.channels, braze.url), base, {}))
        last = f"c{a.channels - 1}"
        us_one = ingress_us(create_app(one), "/line/events", "secret-default", a.requests)
        us_many = ingress_us(create_app(many), f"/line/events/{last}", f"secret-{last}", a.requests)
        redis.Redis.from_url(server.url).flushall()
        w_one = idle_worker(server.url, one, a.idle_seconds)
        w_many = idle_worker(server.url, many, a.idle_seconds)
    finally:
        braze.stop()
        server.cleanup()
    print(f"ingress, per signed webhook (median of 5 x {a.requests}): one channel {us_one:.0f} us, "
          f"{a.channels} channels {us_many:.0f} us")
    for label, (threads, cpu, cmds) in (("one channel", w_one), (f"{a.channels} channels", w_many)):
        print(f"worker idle, {label}: {threads} threads, {cpu * 100:.1f}% of a core, {cmds:,.0f} Redis commands/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
