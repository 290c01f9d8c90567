"""What request handlers share (ingress/state.py)."""

from __future__ import annotations

from ingress import create_app
from ingress.state import EXTENSION
from tests.conftest import TEST_SECRET


def test_repr_of_the_ingress_state_holds_no_secret(settings, r):
    app = create_app(settings.replace(admin_token="test-admin-token"))
    text = repr(app.extensions[EXTENSION])
    assert "IngressState(" in text
    for secret in (TEST_SECRET, "test-admin-token", "test-braze-key", "test-line-token"):
        assert secret not in text
