"""Every ingress checks Redis's settings once at start (ingress/startup.py, shared/redis_checks.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ingress import startup
from shared.embedded_redis import free_port
from shared.errors import ConfigError
from tests.conftest import TEST_SECRET
from tests.ingress.servers import get, ingress_env, running_ingress

pytestmark = pytest.mark.integration


@pytest.fixture
def evicting(r):
    before = r.config_get("maxmemory-policy")["maxmemory-policy"]
    r.config_set("maxmemory-policy", "allkeys-lru")
    yield
    r.config_set("maxmemory-policy", before)


def _run(argv: list[str], redis_url: str, cwd, timeout: float = 40) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=ingress_env(REDIS_URL=redis_url, LINE_CHANNEL_SECRET=TEST_SECRET),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_linesync_ingress_refuses_an_evicting_redis_in_one_line(redis_url, evicting, tmp_path):
    proc = _run([sys.executable, "-m", "linesync.cli", "ingress", "--bind", f"127.0.0.1:{free_port()}",
                 "--admin-bind", f"127.0.0.1:{free_port()}"], redis_url, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "REDIS_URL" in lines[0] and "allkeys-lru" in lines[0]


def test_plain_gunicorn_with_the_config_refuses_it_before_forking(redis_url, evicting, tmp_path):
    port = free_port()
    proc = _run([sys.executable, "-m", "gunicorn", "-c", "python:ingress.gunicorn_conf",
                 "--bind", f"127.0.0.1:{port}", "ingress:create_app()"], redis_url, tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "configuration error" in line]
    assert len(errors) == 1 and "allkeys-lru" in errors[0], proc.stderr
    assert "Booting worker" not in proc.stderr


def test_create_app_checks_when_it_loads_the_settings_itself(redis_url, evicting, monkeypatch):
    from ingress import create_app

    monkeypatch.setattr(startup, "_checked", False)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LINE_CHANNEL_SECRET", TEST_SECRET)
    with pytest.raises(ConfigError, match="allkeys-lru"):
        create_app()


def test_warnings_are_logged_once_not_per_worker(redis_server, r, tmp_path):
    r.config_set("maxmemory", 0)
    with running_ingress(redis_server.url, tmp_path, workers=2) as ing:
        pass
    assert ing.output().count("no maxmemory set") == 1, ing.output()


def test_a_redis_that_does_not_answer_yet_is_no_reason_to_stay_down(tmp_path):
    with running_ingress(f"redis://127.0.0.1:{free_port()}/0", tmp_path, workers=1) as ing:
        assert get(ing.port, "/healthz")[0] == 200
        assert get(ing.port, "/readyz")[0] == 503
    assert "could not check Redis's settings at start" in ing.output()
