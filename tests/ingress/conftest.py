"""Ingress fixtures: an app built by ``create_app(settings)`` on the session Redis.

``client`` reaches every route, as the admin bind does (ingress/surface.py: the
test client says so with the ``linesync.surface`` environ key, which no HTTP
client can set); ``public_client`` sees what the public bind serves.
"""

from __future__ import annotations

import pytest

from ingress import create_app
from ingress.surface import ADMIN, ENVIRON_KEY
from linesync.commands.send_test_webhook import follow_event, unfollow_event, webhook_body
from shared.signature import sign
from tests.conftest import TEST_SECRET

TS = 1_700_000_000_000
USER = "U" + "0123456789abcdef" * 2


@pytest.fixture
def app(settings, r):
    return create_app(settings)


def admin_surface(test_client):
    """A Flask test client whose requests count as come in on the admin bind."""
    test_client.environ_base[ENVIRON_KEY] = ADMIN
    return test_client


@pytest.fixture
def client(app):
    return admin_surface(app.test_client())


@pytest.fixture
def public_client(app):
    return app.test_client()


@pytest.fixture
def post(client):
    """POST a body to /line/events, signed with the test secret unless told otherwise."""

    def _post(body: bytes, *, signature: str | None = "sign", header: str = "X-Line-Signature", **kw):
        headers = kw.pop("headers", {})
        if signature == "sign":
            signature = sign(TEST_SECRET, body)
        if signature is not None:
            headers[header] = signature
        return client.post("/line/events", data=body, headers=headers, content_type="application/json", **kw)

    return _post


@pytest.fixture
def follow_body() -> bytes:
    return webhook_body([follow_event(USER, TS)], destination="U" + "f" * 32)


@pytest.fixture
def two_event_body() -> bytes:
    return webhook_body([follow_event(USER, TS), unfollow_event(USER, TS + 1)], destination="U" + "f" * 32)
