"""The HTTP collaborator of the LINE and Braze checks: one method, one small answer type.

Network failures become :class:`HttpFailure` whose text names the kind of
failure, never a header (the bearer tokens travel in headers).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests

# Connect / read timeouts (s). LINE's test delivery waits up to ~2 s for the ingress before it answers.
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 15.0


@dataclass(frozen=True)
class Reply:
    status: int
    text: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class HttpFailure(Exception):
    """No HTTP answer: connection refused, DNS, TLS, timeout."""


class Http(Protocol):
    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                json: Any = None) -> Reply:
        ...


def describe(e: requests.RequestException) -> str:
    """What went wrong, in a few words (the exception text can be a page long)."""
    if isinstance(e, requests.ConnectTimeout):
        return "timed out connecting"
    if isinstance(e, requests.ReadTimeout):
        return "timed out waiting for the answer"
    if isinstance(e, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(e, requests.ConnectionError):
        return "could not connect"
    return type(e).__name__


class RequestsHttp:
    def __init__(self, session: requests.Session | None = None, *,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT)):
        self.session = session or requests.Session()
        self.timeout = timeout

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                json: Any = None) -> Reply:
        try:
            resp = self.session.request(method, url, headers=dict(headers or {}), json=json, timeout=self.timeout)
        except requests.RequestException as e:
            raise HttpFailure(describe(e)) from e
        return Reply(resp.status_code, resp.text, dict(resp.headers))
