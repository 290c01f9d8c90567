"""A small threaded HTTP/1.1 server for the sandboxes, runnable in a background thread.

Why not werkzeug's development server: it answers every request with
``Connection: close``, so a client pushing ~1000 requests a second would open
~1000 TCP connections a second and run out of ephemeral ports. This server
keeps connections alive, writes each response in one ``sendall`` (no Nagle /
delayed-ACK stalls), and uses one thread per connection.

An application is any object with ``handle(request: Request) -> Response``.
:class:`SandboxServer` runs one: ``start()`` binds (port ``0`` picks a free
port) and serves from a daemon thread; ``url`` is the base URL; ``stop()``
closes the listening socket and every open connection.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

# Listen backlog: many clients may connect at once (the kernel caps it at somaxconn).
DEFAULT_BACKLOG = 1024
# An idle keep-alive connection is closed after this many seconds.
DEFAULT_IDLE_TIMEOUT = 120.0
# Request bodies above this size are refused with 413.
MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]  # first value of each query parameter
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError if it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, body, dict(headers or {}))


class App(Protocol):
    def handle(self, request: Request) -> Response: ...


def time_source(clock: Any) -> Callable[[], float]:
    """Accept ``time.time``-like callables or :class:`shared.clock.Clock` objects."""
    if hasattr(clock, "now"):
        return clock.now
    if callable(clock):
        return clock
    raise TypeError("clock must be a callable returning epoch seconds or have .now()")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "linesync-sandbox"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - not a TCP socket
            pass
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._send(json_response(400, {"message": "malformed request body"}))
            self.close_connection = True
            return
        if body is None:
            self._send(json_response(413, {"message": "request body too large"}))
            self.close_connection = True
            return
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        request = Request(self.command, parts.path or "/", query, headers, body)
        try:
            response = self.server.app.handle(request)
        except Exception:
            log.exception("sandbox: error handling %s %s", self.command, parts.path)
            response = json_response(500, {"message": "sandbox internal error"})
        self._send(response)

    def _send(self, response: Response) -> None:
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            "Date": self.date_time_string(),
            "Server": self.server_version,
            **response.headers,
        }
        if self.close_connection:
            headers["Connection"] = "close"
        lines += [f"{k}: {v}" for k, v in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if self.command == "HEAD" else response.body
        self.wfile.write(head + body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base-class name
        log.debug("sandbox %s: " + format, self.address_string(), *args)


class _Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = DEFAULT_BACKLOG

    def __init__(self, address: tuple[str, int], app: App, idle_timeout: float):
        self.app = app
        self.idle_timeout = idle_timeout
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._conns_lock:
            (self._conns.add if alive else self._conns.discard)(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sandbox: connection error from %s", client_address, exc_info=True)


class SandboxServer:
    """Serve ``app`` over HTTP/1.1 on ``host:port`` (``port=0`` = any free port)."""

    def __init__(self, app: App, *, host: str = "127.0.0.1", port: int = 0, idle_timeout: float = DEFAULT_IDLE_TIMEOUT):
        self.app = app
        self.host = host
        self.port = port
        self.idle_timeout = idle_timeout
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL (kept after ``stop()``: ``start()`` again rebinds the same port)."""
        if self.port == 0:
            raise RuntimeError("server is not started")
        host = self.host if self.host not in ("0.0.0.0", "") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def bind(self) -> SandboxServer:
        if self._server is None:
            self._server = _Server((self.host, self.port), self.app, self.idle_timeout)
            self.port = self._server.server_address[1]
        return self

    def start(self) -> SandboxServer:
        """Bind and serve from a daemon thread; returns once the socket is listening."""
        if self._thread is not None:
            return self
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
            name=f"sandbox-{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until KeyboardInterrupt (or stop() from elsewhere)."""
        self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._close()

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._close()

    def _close(self) -> None:
        if self._server is not None:
            self._server.server_close()
            self._server.close_connections()
            self._server = None


class Sandbox:
    """Base of the sandboxes: owns a :class:`SandboxServer` running ``self``, the
    clock (a callable or an object with ``now()``) and the lock guarding state."""

    def __init__(self, *, host: str, port: int, clock: Any = time.time):
        self._http = SandboxServer(self, host=host, port=port)
        self._now = time_source(clock)
        self._lock = threading.RLock()

    def handle(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def port(self) -> int:
        return self._http.port

    def bind(self) -> Any:
        """Bind the listening socket now (so ``url`` is known) without serving yet."""
        self._http.bind()
        return self

    def start(self) -> Any:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def serve_forever(self) -> None:
        self._http.serve_forever()

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sleep_ms(ms: float) -> None:
    if ms > 0:
        time.sleep(ms / 1000.0)


def admin_body(request: Request) -> dict[str, Any]:
    """The JSON object posted to a ``/_sandbox/…`` endpoint (empty body = ``{}``)."""
    if not request.body:
        return {}
    body = request.json()
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
