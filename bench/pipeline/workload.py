"""The benchmark's traffic: signed LINE bodies of follow/unfollow events, and the client that POSTs them.

Workload: ``n`` events over about ``n / 2.5`` distinct users. Each user gets 1–4
events alternating follow/unfollow (80 % start with follow), placed at random
points of the run; all events are then sorted by that point, stamped with
strictly increasing timestamps (1 ms apart) and cut, in order, into bodies of
1–5 events. A user's events can therefore share a body or sit in neighbouring
bodies, which concurrent POSTs and workers can reorder. The expected Braze
state of a user is the state of its event with the highest timestamp.
"""

from __future__ import annotations

import hashlib
import http.client
import random
import threading
import time
from dataclasses import dataclass, field

from linesync.commands.send_test_webhook import follow_event, unfollow_event, webhook_body
from shared.signature import sign

PATH = "/line/events"
DESTINATION = "U" + "b" * 32
STATE_NAMES = {"follow": "subscribed", "unfollow": "unsubscribed"}


@dataclass
class Workload:
    bodies: list[bytes]
    signatures: list[str]
    n_events: int
    expected: dict[str, str]      # user -> final subscription state
    final_body: dict[str, int]    # user -> index of the body holding its final event

    @property
    def users(self) -> int:
        return len(self.expected)


def user_id(tag: str, i: int) -> str:
    return "U" + hashlib.md5(f"{tag}-{i}".encode()).hexdigest()


def build(n_events: int, secret: str, *, tag: str = "bench", seed: int = 3, base_ms: int | None = None) -> Workload:
    rnd = random.Random(seed)
    placed: list[tuple[float, str, str]] = []  # (point in run, user, event type)
    i = 0
    while len(placed) < n_events:
        user = user_id(tag, i)
        i += 1
        k = min(rnd.randint(1, 4), n_events - len(placed))
        kind = "follow" if rnd.random() < 0.8 else "unfollow"
        for point in sorted(rnd.random() for _ in range(k)):
            placed.append((point, user, kind))
            kind = "unfollow" if kind == "follow" else "follow"
    placed.sort()
    base = int(time.time() * 1000) - 3_600_000 if base_ms is None else base_ms
    bodies, signatures = [], []
    expected: dict[str, str] = {}
    final_body: dict[str, int] = {}
    pos = 0
    while pos < len(placed):
        size = rnd.randint(1, 5)
        events = []
        for j, (_, user, kind) in enumerate(placed[pos:pos + size]):
            ts = base + pos + j
            events.append(follow_event(user, ts) if kind == "follow" else unfollow_event(user, ts))
            expected[user] = STATE_NAMES[kind]
            final_body[user] = len(bodies)
        pos += len(events)
        body = webhook_body(events, DESTINATION)
        bodies.append(body)
        signatures.append(sign(secret, body))
    return Workload(bodies, signatures, len(placed), expected, final_body)


@dataclass
class PostResult:
    started: float                 # time.time() just before the first POST
    ended: float                   # time.time() when the last 200 came back
    answered: list[float]          # per body: time.time() its 200 came back
    request_ms: list[float] = field(default_factory=list)  # per successful request
    non_200: int = 0
    errors: int = 0

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def post_all(port: int, wl: Workload, *, threads: int = 8, stop: threading.Event | None = None) -> PostResult:
    """POST every body in order from ``threads`` keep-alive connections; retry until each gets a 200."""
    n = len(wl.bodies)
    answered = [0.0] * n
    durations: list[list[float]] = [[] for _ in range(threads)]
    failures = [[0, 0] for _ in range(threads)]
    next_index = iter(range(n))
    lock = threading.Lock()
    stop = stop or threading.Event()

    def loop(t: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            headers = {"Content-Type": "application/json; charset=utf-8", "X-Line-Signature": wl.signatures[i]}
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    conn.request("POST", PATH, body=wl.bodies[i], headers=headers)
                    resp = conn.getresponse()
                    resp.read()
                except (OSError, http.client.HTTPException):
                    failures[t][1] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    time.sleep(0.05)
                    continue
                if resp.status == 200:
                    answered[i] = time.time()
                    durations[t].append((time.perf_counter() - t0) * 1000)
                    break
                failures[t][0] += 1  # LINE would redeliver: so do we
                time.sleep(0.05)
        conn.close()

    workers = [threading.Thread(target=loop, args=(t,), daemon=True) for t in range(threads)]
    started = time.time()
    for w in workers:
        w.start()
    for w in workers:
        while w.is_alive():
            w.join(0.2)
    return PostResult(started, max(answered), answered, sorted(x for d in durations for x in d),
                      sum(f[0] for f in failures), sum(f[1] for f in failures))
