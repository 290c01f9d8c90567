"""A client connection as the ingress's worker (ingress/buffered_worker.py) keeps it.

:class:`Conn` is where a connection is: waiting in the event loop for bytes
(``WAITING``), in a thread (``BUSY``), half-closed and being drained
(``CLOSING``) or gone (``CLOSED``), with its deadline and the request being
read. :class:`DeadlineSource` is its socket as gunicorn's parser reads it.
The answers the worker sends by itself, without the application, are here too.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

from ingress.framing import (
    BAD_FRAMING, BAD_FRAMING_DETAIL, HEADERS_TOO_LARGE, LENGTH_REQUIRED, LENGTH_REQUIRED_DETAIL, RequestFraming,
)

# Connection states (``Conn.state``).
WAITING, BUSY, CLOSING, CLOSED = "waiting", "busy", "closing", "closed"

# The interim answer a client sending ``Expect: 100-continue`` waits for before its body.
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def answer(status: int, reason: str, detail: str | None = None) -> bytes:
    """A whole ``Connection: close`` HTTP answer with a small JSON body."""
    error = {"error": reason.lower()} | ({"detail": detail} if detail else {})
    body = json.dumps(error).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


REQUEST_TIMEOUT_ANSWER = answer(408, "Request Timeout")
# Requests refused by the worker itself, by RequestFraming's verdict: (answer, metric reason).
REFUSALS = {
    HEADERS_TOO_LARGE: (answer(431, "Request Header Fields Too Large"), "headers_too_large"),
    LENGTH_REQUIRED: (answer(411, "Length Required", LENGTH_REQUIRED_DETAIL), "length_required"),
    BAD_FRAMING: (answer(400, "Bad Request", BAD_FRAMING_DETAIL), "bad_framing"),
}


def timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


class DeadlineSource:
    """The connection's socket as gunicorn's parser reads it: reads give up at ``deadline``.

    Only a request handed over incomplete (its body over the limit) or framed
    differently by gunicorn than by RequestFraming makes the parser read here.
    """

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.deadline = 0.0

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request read deadline passed")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(max(remaining, 0.001)))
        try:
            return self.sock.recv(size)
        except BlockingIOError:  # SO_RCVTIMEO ran out
            raise TimeoutError("request read deadline passed") from None


class Conn:
    """One client connection and where it is: waiting for bytes, in a thread, or closing."""

    __slots__ = ("sock", "client", "server", "parser", "source", "state", "deadline", "framing",
                 "pending", "body_buffered", "continued", "drained")

    def __init__(self, sock: socket.socket, client: Any, server: Any):
        self.sock = sock
        self.client = client
        self.server = server  # the listening address, for SERVER_NAME / SERVER_PORT
        self.parser: Any = None
        self.source: DeadlineSource | None = None
        self.state = BUSY
        self.deadline = 0.0
        self.framing: RequestFraming | None = None  # the request being read, once its first byte is in
        self.pending = b""  # bytes the parser read ahead (pipelined), for the next request
        self.body_buffered = True
        self.continued = False
        self.drained = 0
