"""The ingress's gunicorn worker: gthread, except that no thread ever waits for a client.

gunicorn's ``gthread`` worker hands a readable connection to a thread, and the
thread then reads headers and body with blocking reads. A client that sends
its headers (``Content-Length: 1500``) and then a few bytes, or nothing, holds
that thread for as long as it likes, without any signature: ``threads`` such
connections stop a worker.

Here a thread only reads what has already arrived (``recv`` with
``MSG_DONTWAIT``) and feeds it to :class:`ingress.framing.RequestFraming`. If
the request is not complete yet, the thread hands the connection back to the
worker's event loop at once, bytes kept, and the loop waits for the socket to
be readable again; a thread gets it again when it is. Only a complete request
is parsed (gunicorn's parser, reading from that buffer) and served. Slow and
stalled clients cost a socket and the bytes they sent, never a waiting thread,
so signed webhooks keep being answered in milliseconds. The main loop does
what gthread's does (poll, accept, hand over, take back), minus its per-request
switches of the socket between blocking and non-blocking.

Every wait is bounded:

- A new connection must deliver its first request within
  REQUEST_READ_TIMEOUT of being accepted. A kept-alive connection may stay
  idle for ``keepalive`` seconds; once its next request starts, that request
  must be in within REQUEST_READ_TIMEOUT. Past the deadline the client gets
  ``408`` (if it had started a request) and the connection is closed.
- Headers over MAX_HEADER_BYTES: ``431`` and the connection is closed.
- A body over the application's ``MAX_CONTENT_LENGTH`` (the ingress sets it to
  ``INGRESS_MAX_BODY_BYTES``) is not buffered: the request is served as soon
  as its headers are in, the application answers ``413`` without reading it,
  and the connection is closed instead of drained.
- A body must come with a ``Content-Length``: a chunked one gets ``411`` from
  the worker as soon as the headers are in, before a byte of it is read (any
  other ``Transfer-Encoding``, or one with a ``Content-Length``: ``400``), and
  the connection is closed. Every request thus costs work in proportion to its
  bytes, at most the header and body limits of them
  (ingress/framing.py says why chunked bodies did not).
- While serving, a read the parser still makes from the socket (it should
  not: the request is in) gives up THREAD_READ_TIMEOUT after the hand-over,
  and a send to a client that does not read gives up after THREAD_IO_TIMEOUT
  (``SO_SNDTIMEO``).
- After a ``Connection: close`` answer the socket is half-closed and drained in
  the event loop for at most CLOSE_LINGER seconds (``gthread`` does that in its
  main thread, which then serves nobody else).

The connection bookkeeping (:class:`~ingress.connection.Conn`, its states, the
parser's deadline-bound socket and the answers the worker sends by itself)
is in ingress/connection.py; this module is the worker: its event loop (main
thread) and what a thread does with a readable connection.

Plain HTTP/1.x only: TLS (and HTTP/2) end at the proxy in front.
``gunicorn -c python:ingress.gunicorn_conf`` selects this worker too.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.http.errors import NoMoreData
from gunicorn.workers import gthread

from ingress.connection import (
    BUSY, CLOSED, CLOSING, CONTINUE, REFUSALS, REQUEST_TIMEOUT_ANSWER, WAITING, Conn, DeadlineSource, timeval,
)
from ingress.framing import COMPLETE, NEED_MORE, RequestFraming

__all__ = ["BufferedThreadWorker", "Conn"]

# A request must be in (headers and body) this long after its first byte; a new
# connection's first request this long after the accept. LINE sends a webhook in
# one go and gives up after 2 s anyway; 10 s leaves room for a 1 MiB admin import
# over a slow link. Waiting costs a socket, not a thread.
REQUEST_READ_TIMEOUT = 10.0
# Largest request head (request line and headers). LINE's are well under 2 kB.
MAX_HEADER_BYTES = 64 * 1024
# Body limit when the application sets no MAX_CONTENT_LENGTH (the ingress always does).
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# While serving: how long a read from the client may still take (none should be needed).
THREAD_READ_TIMEOUT = 2.0
# While serving: how long one send may block on a client that does not read.
THREAD_IO_TIMEOUT = 5.0
# A closing connection is drained (so the kernel does not reset the answer) this long at most...
CLOSE_LINGER = 2.0
# ...and this many bytes at most.
CLOSE_DRAIN_BYTES = 64 * 1024
# How long idle kept-alive connections are kept when the worker stops (gthread's figure).
STOP_KEEPALIVE_LINGER = 2.0
# Bytes asked for per recv().
RECV_SIZE = 64 * 1024
# How often deadlines are checked.
SWEEP_INTERVAL = 0.25
# Out of file descriptors (or kernel memory): stop accepting for this long, serve the rest.
ACCEPT_PAUSE = 0.5
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# What a thread hands back when the request is not all in yet.
_MORE = object()


class BufferedThreadWorker(gthread.ThreadWorker):
    """gthread whose threads never wait for a client (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.watched: dict[Conn, None] = {}  # connections in the poller (waiting or closing)
        self.max_body_bytes = DEFAULT_MAX_BODY_BYTES
        self._listener_names: dict[Any, Any] = {}
        self._next_sweep = 0.0
        self._accept_paused_until = 0.0
        self._count_cut = lambda reason: None

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise RuntimeError(f"{cls.__module__}.{cls.__name__} serves plain HTTP: "
                               "end TLS at the proxy in front, or use another worker class")

    def load_wsgi(self) -> None:
        super().load_wsgi()
        config = getattr(self.wsgi, "config", None)  # a Flask app: its body limit is ours
        limit = config.get("MAX_CONTENT_LENGTH") if isinstance(config, dict) else None
        self.max_body_bytes = int(limit) if limit else DEFAULT_MAX_BODY_BYTES
        try:  # after create_app: prometheus_client is set up for this process by now
            from ingress.metrics import count_cut_connection
        except ImportError:  # pragma: no cover - another application under this worker
            return
        self._count_cut = count_cut_connection

    # -- the event loop (main thread) ---------------------------------------------------

    def run(self) -> None:
        self.poller.register(self.method_queue.fileno(), selectors.EVENT_READ, self.method_queue.run_callbacks)
        self.set_accept_enabled(True)
        while self.alive:
            self.notify()
            can_accept = (self.nr_conns < self.worker_connections
                          and time.monotonic() >= self._accept_paused_until)
            if can_accept != self._accepting:
                self.set_accept_enabled(can_accept)
            self.wait_for_and_dispatch_events(timeout=SWEEP_INTERVAL)
            if not self.is_parent_alive():
                break
            self._sweep(time.monotonic())

        # Stopping: no new connections; idle ones get a short linger (a request already
        # on its way is answered with "Connection: close"), requests in progress their deadline.
        self.set_accept_enabled(False)
        now = time.monotonic()
        for conn in self.watched:
            if conn.state == WAITING and conn.framing is None:
                conn.deadline = min(conn.deadline, now + STOP_KEEPALIVE_LINGER)
        stop_at = now + self.cfg.graceful_timeout
        while self.nr_conns > 0 and time.monotonic() < stop_at:
            self.notify()
            self.wait_for_and_dispatch_events(timeout=SWEEP_INTERVAL)
            self._sweep(time.monotonic())
        for conn in list(self.watched):
            self._drop(conn)
        self.tpool.shutdown(wait=False)
        self.poller.close()
        self.method_queue.close()
        for s in self.sockets:
            s.close()

    def accept(self, listener: Any) -> None:
        try:
            sock, client = listener.accept()
        except OSError as e:
            if e.errno in _OUT_OF_RESOURCES:
                self.log.warning("cannot accept connections (%s): pausing accepts for %ss, %d open",
                                 errno.errorcode.get(e.errno, e.errno), ACCEPT_PAUSE, self.nr_conns)
                self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                self.set_accept_enabled(False)
                return
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        try:
            # Blocking for good: reads that must not wait use MSG_DONTWAIT; sends give up
            # after THREAD_IO_TIMEOUT (kernel timeout, no poll() before each send).
            sock.setblocking(True)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(THREAD_IO_TIMEOUT))
        except OSError:
            self._close(Conn(sock, client, None))
            return
        name = self._listener_names.get(listener)
        if name is None:
            name = self._listener_names[listener] = listener.getsockname()
        conn = Conn(sock, client, name)
        conn.deadline = time.monotonic() + REQUEST_READ_TIMEOUT
        self.enqueue_req(conn)  # a client usually sends right away: read it now, or wait in the poller

    def _watch(self, conn: Conn, callback: Any) -> None:
        self.watched[conn] = None
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(callback, conn))

    def _unwatch(self, conn: Conn) -> None:
        if self.watched.pop(conn, False) is None:
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _on_readable(self, conn: Conn, _sock: Any) -> None:
        if conn.state != WAITING:
            return  # an event for a connection closed earlier in the same batch
        self._unwatch(conn)
        conn.state = BUSY
        self.enqueue_req(conn)

    def finish_request(self, conn: Conn, fs: Any) -> None:  # type: ignore[override]
        """Back from a thread: wait for (more of) a request, or close."""
        try:
            result = fs.result() if not fs.cancelled() else False
        except Exception:
            result = False
        if result is _MORE:  # not all in yet: wait for more bytes (deadline unchanged)
            conn.state = WAITING
            self._watch(conn, self._on_readable)
        elif result:
            conn.deadline = time.monotonic() + (self.cfg.keepalive if self.alive else STOP_KEEPALIVE_LINGER)
            if conn.pending:  # the client pipelined its next request: no need to wait
                self.enqueue_req(conn)
                return
            conn.state = WAITING
            self._watch(conn, self._on_readable)
        else:
            self._close_gracefully(conn)

    def _sweep(self, now: float) -> None:
        """Close connections past their deadline (408 to a client in the middle of a request)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL
        for conn in [c for c in self.watched if c.deadline <= now]:
            if conn.state == WAITING and conn.framing is not None:
                self._count_cut("read_timeout")
                self.log.debug("request from %s not in within %ss: 408", conn.client, REQUEST_READ_TIMEOUT)
                self._unwatch(conn)
                self._send_now(conn, REQUEST_TIMEOUT_ANSWER)
                self._close_gracefully(conn)  # the client may read the 408 (no reset for its unread bytes)
            else:
                self._drop(conn)

    def _send_now(self, conn: Conn, data: bytes) -> bool:
        """Send a few bytes without waiting; False if they did not all go."""
        try:
            return conn.sock.send(data, socket.MSG_DONTWAIT) == len(data)
        except OSError:
            return False

    def _close(self, conn: Conn) -> None:
        conn.state = CLOSED
        self.nr_conns -= 1
        try:
            conn.sock.close()
        except OSError:
            pass

    def _drop(self, conn: Conn) -> None:
        if conn.state == CLOSED:
            return
        self._unwatch(conn)
        self._close(conn)

    def _close_gracefully(self, conn: Conn) -> None:
        """Half-close, then drain what the client still sends (in the loop) until it closes too."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.state = CLOSING
        conn.deadline = time.monotonic() + CLOSE_LINGER
        conn.drained = 0
        self._watch(conn, self._on_closing_readable)

    def _on_closing_readable(self, conn: Conn, _sock: Any) -> None:
        if conn.state != CLOSING:
            return
        try:
            data = conn.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= CLOSE_DRAIN_BYTES:
            self._drop(conn)

    # -- in a thread ----------------------------------------------------------------

    def handle(self, conn: Conn) -> Any:  # type: ignore[override]
        """Read what has arrived; serve the request once it is all in.

        Returns _MORE (wait for more bytes), True (keep the connection for the next
        request) or False (close it).
        """
        req = None
        try:
            framing = conn.framing
            data, conn.pending = conn.pending, b""
            while True:
                if not data:
                    try:
                        data = conn.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        return _MORE
                    if not data:  # the client closed
                        return False
                if framing is None:  # a request's first bytes: its read deadline starts
                    framing = conn.framing = RequestFraming(max_header_bytes=MAX_HEADER_BYTES,
                                                            max_body_bytes=self.max_body_bytes)
                    conn.continued = False
                    conn.deadline = min(conn.deadline, time.monotonic() + REQUEST_READ_TIMEOUT)
                state = framing.feed(data)
                data = b""
                if state != NEED_MORE:
                    break
                if framing.expects_continue and not conn.continued:
                    conn.continued = True  # the client waits for this before it sends its body
                    conn.sock.sendall(CONTINUE)
            conn.framing = None
            refusal = REFUSALS.get(state)
            if refusal is not None:
                answer, reason = refusal
                self._count_cut(reason)
                conn.sock.sendall(answer)
                return False
            conn.body_buffered = state == COMPLETE
            # Serve it: gunicorn's parser reads the request from these bytes.
            if conn.parser is None:
                conn.source = DeadlineSource(conn.sock)
                conn.parser = http.get_parser(self.cfg, conn.source, conn.client)
            conn.source.deadline = time.monotonic() + THREAD_READ_TIMEOUT
            conn.parser.unreader.unread(bytes(framing.data))
            req = next(conn.parser)
            if not req:
                return False
            if not self.handle_request(req, conn) or not conn.body_buffered:
                return False  # an unread body over the limit is not drained: close
            return self._ready_for_next(conn)
        except NoMoreData as e:
            self.log.debug("Ignored premature client disconnection. %s", e)
        except StopIteration as e:
            self.log.debug("Closing connection. %s", e)
        except (TimeoutError, BlockingIOError):  # a deadline, or SO_SNDTIMEO on a client that does not read
            self.log.debug("client %s: a read or write timed out", conn.client)
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.debug("client %s went away: %s", conn.client, e)
            else:
                self.log.exception("Socket error processing request.")
        except Exception as e:
            self.handle_error(req, conn.sock, conn.client, e)
        return False

    def _ready_for_next(self, conn: Conn) -> bool:
        """After an answer on a kept-alive connection: the body is consumed, read-ahead kept."""
        # The rest of the body is in the buffer (reads past it hit the source's deadline).
        # gunicorn >= 26 says False when it could not drain it; older ones return None.
        if conn.parser.finish_body() is False:
            return False
        unreader = conn.parser.unreader
        conn.pending = unreader.buf.getvalue()  # the client's next request, pipelined
        if conn.pending:
            unreader.buf = type(unreader.buf)()
        return True
