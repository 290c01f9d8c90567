"""Slow and stalled clients hold no thread (ingress/buffered_worker.py), over real HTTP.

The real `linesync ingress` (2 gunicorn workers x 8 threads) while 40
connections dribble or stall: signed webhooks must still get 200 well inside
LINE's 2 s. With gunicorn's stock gthread worker (run this file with
GUNICORN_CMD_ARGS="--worker-class gthread" to see it) every thread is held by
a slow client and the webhooks time out. Every loop here is bounded in time.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ingress.buffered_worker import REQUEST_READ_TIMEOUT, SWEEP_INTERVAL
from linesync.commands.send_test_webhook import follow_event, webhook_body
from shared.signature import sign
from shared.webhook_queue import BODY_FIELD
from tests.conftest import TEST_SECRET
from tests.ingress.servers import Responses, closed_within, get, running_ingress

pytestmark = pytest.mark.integration

MAX_BODY = 4096
LINE_TIMEOUT = 2.0
SLOW_CLIENTS = 40


@pytest.fixture(scope="module")
def ingress(redis_server, tmp_path_factory):
    with running_ingress(redis_server.url, tmp_path_factory.mktemp("ingress"),
                         INGRESS_MAX_BODY_BYTES=str(MAX_BODY)) as ing:
        yield ing


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _request(body: bytes, *, signed: bool = True, extra: bytes = b"") -> bytes:
    sig = sign(TEST_SECRET, body) if signed else "nope"
    return (b"POST /line/events HTTP/1.1\r\nHost: linesync\r\nContent-Type: application/json\r\n"
            b"X-Line-Signature: " + sig.encode() + b"\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _post_timed(port: int, body: bytes) -> tuple[int, float]:
    """A fresh connection per webhook, as LINE opens them; (status or 0 on timeout, seconds)."""
    started = time.monotonic()
    try:
        with _connect(port) as s:
            s.sendall(_request(body))
            status, _, _ = Responses(s).next(timeout=LINE_TIMEOUT + 1)
    except OSError:
        status = 0
    return status, time.monotonic() - started


def test_signed_webhooks_answer_within_2s_while_40_clients_dribble_or_stall(ingress, r, keys):
    port = ingress.port
    head = (b"POST /line/events HTTP/1.1\r\nHost: linesync\r\nContent-Type: application/json\r\n"
            b"X-Line-Signature: anything\r\nContent-Length: 1500\r\n\r\n")
    dribble_body, stall, dribble_head = [], [], []
    silent = _connect(port)  # connects and never sends a byte
    for i in range(SLOW_CLIENTS):
        s = _connect(port)
        if i % 4 in (0, 1):   # headers, then the body a byte at a time
            s.sendall(head + b"{")
            dribble_body.append(s)
        elif i % 4 == 2:      # headers, then nothing
            s.sendall(head)
            stall.append(s)
        else:                 # the headers themselves a byte at a time
            s.sendall(head[:20])
            dribble_head.append(s)

    stop = threading.Event()

    def dribble() -> None:
        deadline = time.monotonic() + REQUEST_READ_TIMEOUT + 5  # bounded whatever happens
        n = 0
        while not stop.is_set() and time.monotonic() < deadline:
            for s in dribble_body:
                _send_quietly(s, b" ")
            for s in dribble_head:
                _send_quietly(s, head[20 + n:21 + n] or b"")
            n += 1
            stop.wait(0.2)

    dribbler = threading.Thread(target=dribble, daemon=True)
    dribbler.start()
    try:
        time.sleep(0.5)  # every slow connection accepted by a worker and read from
        bodies = [webhook_body([follow_event("U" + f"{i:032x}", 1_700_000_000_000 + i)]) for i in range(32)]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda b: _post_timed(port, b), bodies))
        statuses = [s for s, _ in results]
        slowest = max(t for _, t in results)
        assert statuses == [200] * len(bodies), f"statuses {statuses}"
        assert slowest < LINE_TIMEOUT, f"slowest answer {slowest:.2f}s"
        stored = {f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)}
        assert set(bodies) <= stored
        assert get(port, "/readyz")[0] == 200

        # The slow ones are not kept forever: 408 (they had started a request), then closed.
        limit = REQUEST_READ_TIMEOUT + 2 * SWEEP_INTERVAL + 3
        for s in stall + dribble_body[:3] + dribble_head[:3]:
            got = closed_within(s, limit)
            assert got.startswith(b"HTTP/1.1 408 "), got[:80]
        assert closed_within(silent, limit) == b""  # nothing started: closed without an answer
    finally:
        stop.set()
        dribbler.join(5)
        for s in [silent, *dribble_body, *stall, *dribble_head]:
            s.close()


def _send_quietly(s: socket.socket, data: bytes) -> None:
    if not data:
        return
    try:
        s.send(data)
    except OSError:
        pass  # closed by the server (its deadline) or by the test


def test_keep_alive_pipelining_and_100_continue(ingress, r, keys):
    bodies = [webhook_body([follow_event("U" + "c" * 32, 1_700_000_000_000 + i)]) for i in range(4)]
    with _connect(ingress.port) as s:
        responses = Responses(s)
        # Keep-alive: one request after the other on one connection.
        s.sendall(_request(bodies[0]))
        assert responses.next()[0] == 200
        # Pipelined: two requests in one write, two answers in order.
        s.sendall(_request(bodies[1]) + _request(bodies[2], signed=False))
        assert [responses.next()[0], responses.next()[0]] == [200, 401]
        # Expect: 100-continue: the client hears "100 Continue" before it sends the body.
        full = _request(bodies[3], extra=b"Expect: 100-continue\r\n")
        head, _, body = full.partition(b"\r\n\r\n")
        s.sendall(head + b"\r\n\r\n")
        assert responses.next(timeout=2)[0] == 100
        s.sendall(body)
        statuses = [responses.next()[0]]
        while statuses[-1] == 100:  # gunicorn may confirm once more when it hands the request on
            statuses.append(responses.next()[0])
        assert statuses[-1] == 200
    stored = [f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)]
    assert stored == [bodies[0], bodies[1], bodies[3]]


def test_a_body_over_the_limit_is_refused_without_waiting_for_it(ingress, r, keys):
    with _connect(ingress.port) as s:
        started = time.monotonic()
        s.sendall(b"POST /line/events HTTP/1.1\r\nHost: x\r\nX-Line-Signature: x\r\n"
                  b"Content-Length: %d\r\n\r\n{" % (MAX_BODY + 1))
        status, headers, _ = Responses(s).next(timeout=3)
        assert status == 413 and time.monotonic() - started < 1
        assert closed_within(s, 5) == b""  # not kept alive: the rest of the body is never read
    assert r.xlen(keys.webhooks) == 0


def test_a_chunked_body_is_411_before_its_data(ingress, r, keys):
    with _connect(ingress.port) as s:
        s.sendall(b"POST /line/events HTTP/1.1\r\nHost: x\r\nX-Line-Signature: x\r\n"
                  b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        got = closed_within(s, 3)  # answered and closed with no byte of the body sent
        assert got.startswith(b"HTTP/1.1 411 "), got[:80]
        assert b"Content-Length" in got.partition(b"\r\n\r\n")[2]  # says what to send instead
    assert r.xlen(keys.webhooks) == 0


@pytest.mark.parametrize("framing", [
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",  # both: ambiguous, a smuggling classic
    b"Content-Length: 5\r\nContent-Length: 6\r\n",
    b"Transfer-Encoding: gzip\r\n",                            # not ending in chunked
])
def test_ambiguous_or_malformed_framing_is_400_at_once(ingress, framing):
    with _connect(ingress.port) as s:
        s.sendall(b"POST /line/events HTTP/1.1\r\nHost: x\r\nX-Line-Signature: x\r\n" + framing + b"\r\n")
        got = closed_within(s, 3)  # answered and closed with no byte of the body sent
        assert got.startswith(b"HTTP/1.1 400 "), got[:80]


def test_headers_over_64_kib_are_refused(ingress):
    with _connect(ingress.port) as s:
        s.sendall(b"POST /line/events HTTP/1.1\r\nHost: x\r\n")
        for _ in range(70):
            try:
                s.sendall(b"X-Pad: " + b"a" * 1000 + b"\r\n")
            except OSError:
                break  # the server answered and closed meanwhile
        got = closed_within(s, 5)
        assert got.startswith(b"HTTP/1.1 431 "), got[:80]
