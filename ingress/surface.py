"""Public bind or admin bind: which one a request came in on, and what each serves.

The ingress listens on two addresses (``linesync ingress --bind`` and
``--admin-bind``, gunicorn's ``bind = [public, admin]``):

- public (LINE, load balancers): ``/line/events``, ``/healthz``, ``/readyz``;
  every other path is ``404`` there, whatever the route.
- admin (operators, Prometheus; keep it private): every route, so also
  ``/metrics``, the token-protected ``/v1/…`` and ``/status``.

Which bind a request came in on is read from the connection itself: the local
address of gunicorn's client socket (``environ["gunicorn.socket"]``,
``getsockname()``) compared with the admin bind. No header takes part (the
``Host`` header, ``SERVER_NAME`` and ``SERVER_PORT`` are the client's to say
under some servers), and the check costs one system call, made only for paths
the public bind does not serve. A request with no gunicorn socket (another
WSGI server) is public. A trusted in-process caller (Flask's test client) may
say ``environ["linesync.surface"] = "admin"``: an HTTP client cannot set a WSGI
key that does not start with ``HTTP_``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_ADMIN_BIND = "127.0.0.1:9080"

ENVIRON_KEY = "linesync.surface"
ADMIN, PUBLIC = "admin", "public"
# What the public bind serves; everything else answers 404 there.
PUBLIC_PATHS = frozenset({"/line/events", "/healthz", "/readyz"})

_WILDCARDS = {"", "0.0.0.0", "::", "*"}
_NOT_FOUND = b'{"error":"not found"}'


def _ip(text: str) -> str:
    """An address in one spelling (an IPv4-mapped IPv6 address as IPv4; no zone)."""
    addr = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr)


@dataclass(frozen=True)
class AdminBind:
    """The admin bind's address: ``port`` with ``hosts`` (None = any address), or a Unix socket ``path``."""

    port: int | None = None
    hosts: frozenset[str] | None = None
    path: str | None = None

    @classmethod
    def parse(cls, bind: str) -> AdminBind:
        """``HOST:PORT``, ``[IPv6]:PORT`` or ``unix:PATH`` (gunicorn's spellings)."""
        if bind.startswith("unix:"):
            return cls(path=bind[len("unix:"):])
        host, sep, port = bind.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"expected HOST:PORT or unix:PATH, got {bind!r}")
        host = host.strip("[]")
        if host in _WILDCARDS:
            return cls(port=int(port))
        try:
            infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
            hosts = frozenset(_ip(info[4][0]) for info in infos)
        except (OSError, ValueError) as e:
            # Never admin rather than maybe admin: gunicorn cannot bind it either.
            log.warning("admin bind %s: cannot resolve %s (%s); the admin surface is unreachable", bind, host, e)
            hosts = frozenset()
        return cls(port=int(port), hosts=hosts)

    def matches(self, local: Any) -> bool:
        """Whether ``local`` (a socket's ``getsockname()``) is this bind."""
        if self.path is not None:
            if isinstance(local, bytes):
                local = local.decode(errors="replace")
            return local == self.path
        if not isinstance(local, tuple) or len(local) < 2 or local[1] != self.port:
            return False
        if self.hosts is None:
            return True
        try:
            return _ip(local[0]) in self.hosts
        except ValueError:
            return False


def surface_of(environ: dict[str, Any], admin: AdminBind) -> str:
    """ADMIN or PUBLIC: the bind this request's connection was accepted on."""
    forced = environ.get(ENVIRON_KEY)
    if forced is not None:
        return ADMIN if forced == ADMIN else PUBLIC
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return PUBLIC
    try:
        local = sock.getsockname()
    except OSError:
        return PUBLIC
    return ADMIN if admin.matches(local) else PUBLIC


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SurfaceGate:
    """WSGI middleware: on the public bind, only PUBLIC_PATHS reach the application."""

    def __init__(self, admin: AdminBind, app: WSGIApp):
        self.admin = admin
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in PUBLIC_PATHS or surface_of(environ, self.admin) == ADMIN:
            return self.app(environ, start_response)
        start_response("404 NOT FOUND", [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(_NOT_FOUND)))])
        return [_NOT_FOUND]
