"""A fake HTTP collaborator for the doctor's LINE and Braze checks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from linesync.doctor.http import HttpFailure, Reply


def reply(status: int, body: Any = None, **headers: str) -> Reply:
    return Reply(status, json.dumps(body) if body is not None else "", headers)


class FakeHttp:
    """Answers by (method, path); records every request (url, headers, json)."""

    def __init__(self, routes: dict[tuple[str, str], Reply | Exception] | None = None):
        self.routes = dict(routes or {})
        self.calls: list[dict[str, Any]] = []

    def request(self, method, url, *, headers=None, json=None) -> Reply:
        self.calls.append({"method": method, "url": url, "headers": dict(headers or {}), "json": json})
        answer = self.routes.get((method, urlsplit(url).path))
        if answer is None:
            raise HttpFailure("could not connect")
        if isinstance(answer, Exception):
            raise answer
        return answer
