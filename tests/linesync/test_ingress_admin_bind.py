"""`linesync ingress`: the admin bind from --admin-bind, else LINESYNC_ADMIN_BIND, else 127.0.0.1:9080."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from linesync.commands import ingress as ingress_module

ENV = {"REDIS_URL": "redis://127.0.0.1:1/0", "LINE_CHANNEL_SECRET": "s"}


@pytest.fixture
def started(monkeypatch):
    """The admin bind the ingress would serve (nothing is started)."""
    seen = {}

    class Server:
        def __init__(self, settings, overrides, *, admin_bind):
            seen["admin_bind"], seen["bind"] = admin_bind, overrides["bind"]

        def run(self):
            pass

    monkeypatch.setattr(ingress_module, "IngressServer", Server)
    monkeypatch.setattr(ingress_module.startup, "check_redis", lambda url, *a: None)
    monkeypatch.setattr(ingress_module, "setup_logging", lambda *a: None)
    for name in ("LINESYNC_ADMIN_BIND", "REDIS_URL", "LINE_CHANNEL_SECRET"):
        monkeypatch.delenv(name, raising=False)
    return seen


def run(args, env):
    return CliRunner().invoke(ingress_module.ingress, args, env=env)


def test_the_default(started, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    assert run(["--bind", "0.0.0.0:8080"], ENV).exit_code == 0
    assert started["admin_bind"] == "127.0.0.1:9080"


def test_from_the_environment_and_the_flag_wins(started, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert run(["--bind", "0.0.0.0:8080"], {**ENV, "LINESYNC_ADMIN_BIND": "0.0.0.0:9180"}).exit_code == 0
    assert started["admin_bind"] == "0.0.0.0:9180" and started["bind"] == ["0.0.0.0:8080", "0.0.0.0:9180"]
    assert run(["--bind", "0.0.0.0:8080", "--admin-bind", "127.0.0.1:9999"],
               {**ENV, "LINESYNC_ADMIN_BIND": "0.0.0.0:9180"}).exit_code == 0
    assert started["admin_bind"] == "127.0.0.1:9999"


def test_the_environment_may_not_name_the_public_bind(started, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = run(["--bind", "0.0.0.0:8080"], {**ENV, "LINESYNC_ADMIN_BIND": "0.0.0.0:8080"})
    assert result.exit_code != 0 and "LINESYNC_ADMIN_BIND" in str(result.exception or result.output)
