"""ingress/buffered_worker.py in-process: what one request costs the thread that handles it.

The worker is built as gunicorn builds it (no fork, no event loop): its
``handle`` is called on one end of a socket pair while a thread writes the
request into the other, as the event loop would call it each time the socket
is readable. Work is counted, never timed: the function calls (Python and C)
the handling thread makes, from the first read to the verdict.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import threading
from collections.abc import Callable

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger

from ingress.buffered_worker import _MORE, BufferedThreadWorker, Conn
from shared.signature import sign
from tests.conftest import TEST_SECRET
from tests.ingress.conftest import USER, TS
from linesync.commands.send_test_webhook import follow_event, webhook_body

HEAD = b"POST /line/events HTTP/1.1\r\nHost: linesync\r\nX-Line-Signature: nope\r\n"


@pytest.fixture
def worker(app):
    cfg = Config()
    w = BufferedThreadWorker(0, os.getppid(), [], None, 30, cfg, Logger(cfg))
    w.wsgi = app
    w.max_body_bytes = app.config["MAX_CONTENT_LENGTH"]
    yield w
    w.tmp.close()


def chunked(n: int) -> bytes:
    """An unsigned request whose body comes in ``n`` one-byte chunks."""
    return HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n" * n + b"0\r\n\r\n"


def with_length(body: bytes, signature: str = "nope") -> bytes:
    return (b"POST /line/events HTTP/1.1\r\nHost: linesync\r\nX-Line-Signature: " + signature.encode()
            + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def handled(worker: BufferedThreadWorker, request: bytes) -> tuple[bytes, int]:
    """Serve ``request`` through ``worker.handle``; (what the client got, calls the handling made)."""
    ours, theirs = socket.socketpair()
    answer = bytearray()

    def client() -> None:
        try:
            theirs.sendall(request)
        except OSError:
            pass  # refused and closed before all of it was sent
        theirs.settimeout(10)
        try:
            while data := theirs.recv(65536):
                answer.extend(data)
        except OSError:
            pass

    writer = threading.Thread(target=client, daemon=True)
    writer.start()
    worker.nr_conns += 1
    conn = Conn(ours, ("127.0.0.1", 40000), ("127.0.0.1", 8080))
    calls = 0

    def count(frame, event, arg) -> Callable | None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1
        return None

    result = _MORE
    try:
        for _ in range(10_000):  # bounded: each round reads what arrived since the last
            select.select([ours], [], [], 10)
            sys.setprofile(count)
            try:
                result = worker.handle(conn)
            finally:
                sys.setprofile(None)
            if result is not _MORE:
                break
    finally:
        ours.shutdown(socket.SHUT_RDWR)
        ours.close()
        writer.join(10)
        theirs.close()
    assert result is not _MORE
    return bytes(answer), calls


def test_a_chunked_body_costs_the_same_work_for_1_chunk_as_for_60000(worker, r, keys):
    """The regression: gunicorn's chunked reader, fed a buffered body, copied what was left of it per
    chunk (8 requests of 60,000 one-byte chunks held the CPU for seconds each). Refused at the
    headers (411), a chunked body costs what its headers cost, however many chunks follow."""
    one, work_one = handled(worker, chunked(1))
    many, work_many = handled(worker, chunked(60_000))
    assert work_many <= 2 * work_one, (work_one, work_many)
    for answer in (one, many):
        assert answer.startswith(b"HTTP/1.1 411 "), answer[:80]
        assert b"Content-Length" in answer
    assert r.xlen(keys.webhooks) == 0


def test_a_body_with_its_length_costs_work_independent_of_its_size(worker, r, keys):
    """Bytes are read, scanned once and handed on in a few large pieces: 60 kB costs little more
    than 1 byte (an unsigned body is read and refused 401 either way)."""
    small, work_small = handled(worker, with_length(b"a"))
    big, work_big = handled(worker, with_length(b"a" * 60_000))
    assert small.startswith(b"HTTP/1.1 401 ") and big.startswith(b"HTTP/1.1 401 ")
    assert work_big <= 2 * work_small + 200, (work_small, work_big)


def test_a_signed_webhook_is_served_and_stored(worker, r, keys):
    body = webhook_body([follow_event(USER, TS)])
    answer, _ = handled(worker, with_length(body, sign(TEST_SECRET, body)))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:80]
    assert r.xlen(keys.webhooks) == 1
