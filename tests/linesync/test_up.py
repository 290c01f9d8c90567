"""`linesync up`'s plan: what it provides and which processes it runs (pure functions)."""

from __future__ import annotations

import os
import stat
import subprocess

import click
import pytest

from linesync.cli import COMMANDS
from linesync.commands import up as up_module
from linesync.commands.up import (
    SANDBOX_SUBSCRIPTION_GROUP_ID,
    Local,
    banner,
    channel_secret,
    child_environment,
    env_file_text,
    local_public_url,
    local_url,
    missing_services,
    parse_bind,
    process_specs,
    provided_variables,
)
from shared.config import ROLE_REQUIREMENTS, load_settings

EVERYTHING_LOCAL = Local(redis_port=6390, braze_port=7001, line_port=7002, channel_secret="c0ffee",
                         public_url="http://127.0.0.1:8080")


def test_missing_services_reads_only_what_is_set():
    m = missing_services({"REDIS_URL": "redis://r:6379/0", "LINE_API_BASE_URL": " "})
    assert (m.redis, m.braze, m.line, m.channel_secret) == (False, True, True, True)
    m = missing_services({"BRAZE_REST_ENDPOINT": "https://rest.iad-01.braze.com", "LINE_CHANNEL_SECRET": "s",
                          "LINE_API_BASE_URL": "https://api.line.me"})
    assert (m.redis, m.braze, m.line, m.channel_secret) == (True, False, False, False)


def test_provided_variables_satisfy_every_role():
    env = child_environment({}, EVERYTHING_LOCAL)
    settings = load_settings(env, dotenv=False)
    for role in ("ingress", "worker", "resync", "cli"):
        settings.require(*ROLE_REQUIREMENTS[role])
    assert settings.redis_url == "redis://127.0.0.1:6390/0"
    assert settings.braze_rest_endpoint == "http://127.0.0.1:7001"
    assert settings.line_api_base_url == "http://127.0.0.1:7002"
    assert settings.braze_subscription_group_id == SANDBOX_SUBSCRIPTION_GROUP_ID
    assert settings.line_channel_secret == "c0ffee"
    assert settings.webhook_url == "http://127.0.0.1:8080/line/events"


def test_the_sandbox_values_pass_doctor():
    from linesync.doctor.braze_checks import subscription_group

    assert subscription_group(SANDBOX_SUBSCRIPTION_GROUP_ID).ok is True


def test_what_the_user_set_is_kept():
    base = {"REDIS_URL": "redis://mine:6379/1", "BRAZE_API_KEY": "mine", "PATH": "/bin"}
    env = child_environment(base, Local(line_port=7002))
    assert env["REDIS_URL"] == "redis://mine:6379/1"
    assert env["BRAZE_API_KEY"] == "mine"
    assert env["PATH"] == "/bin"
    assert "BRAZE_REST_ENDPOINT" not in provided_variables(Local(line_port=7002))


def test_process_specs_everything_local():
    env = child_environment({}, EVERYTHING_LOCAL)
    specs = process_specs(env, EVERYTHING_LOCAL, python="/py", bind="127.0.0.1:8080",
                          data_dir=".linesync", redis_server="/bin/redis-server", concurrency=2)
    assert [s.name for s in specs] == ["redis", "braze", "line", "ingress", "worker", "beat"]
    by_name = {s.name: s for s in specs}
    redis = by_name["redis"].argv
    assert redis[0] == "/bin/redis-server"
    assert redis[redis.index("--port") + 1] == "6390"
    assert redis[redis.index("--dir") + 1] == os.path.join(".linesync", "redis")
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert redis[redis.index("--bind") + 1] == "127.0.0.1"
    assert redis[redis.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis[redis.index("--maxmemory") + 1] == "1gb"  # noeviction needs a ceiling (linesync doctor)
    assert list(by_name["braze"].argv[3:]) == [
        "sandbox", "braze", "--bind", "127.0.0.1:7001", "--api-key", env["BRAZE_API_KEY"]]
    assert list(by_name["line"].argv[3:]) == [
        "sandbox", "line", "--bind", "127.0.0.1:7002", "--access-token", env["LINE_CHANNEL_ACCESS_TOKEN"],
        "--followers", "100", "--webhook-endpoint", "http://127.0.0.1:8080/line/events"]
    # The channel secret reaches the LINE sandbox through its environment, never its argv.
    assert "c0ffee" not in by_name["line"].argv and by_name["line"].env["LINE_CHANNEL_SECRET"] == "c0ffee"
    assert list(by_name["ingress"].argv[3:6]) == ["ingress", "--bind", "127.0.0.1:8080"]
    ingress = by_name["ingress"].argv
    assert ingress[ingress.index("--admin-bind") + 1] == "127.0.0.1:9080"  # the admin surface: /metrics, /v1
    assert list(by_name["worker"].argv[3:]) == ["worker", "--concurrency", "2"]
    assert list(by_name["beat"].argv[3:]) == ["beat"]
    # Applications stop before the sandboxes, the sandboxes before Redis.
    assert by_name["ingress"].tier > by_name["braze"].tier > by_name["redis"].tier
    for spec in specs:
        assert spec.env == env
        if spec.name != "redis":
            assert list(spec.argv[:3]) == ["/py", "-m", "linesync.cli"]
            assert spec.argv[3] in COMMANDS


def test_line_sandbox_webhook_follows_the_public_url():
    local = Local(line_port=7002)
    env = child_environment({"LINESYNC_PUBLIC_URL": "https://tunnel.example.com/", "LINE_CHANNEL_SECRET": "s"}, local)
    (line, *_) = process_specs(env, local, python="/py", bind="0.0.0.0:9000", data_dir="d")
    assert line.argv[-2:] == ["--webhook-endpoint", "https://tunnel.example.com/line/events"]
    env = child_environment({"LINE_CHANNEL_SECRET": "s"}, local)
    (line, *_) = process_specs(env, local, python="/py", bind="0.0.0.0:9000", data_dir="d")
    assert line.argv[-1] == "http://127.0.0.1:9000/line/events"


def test_public_url_is_provided_only_with_the_line_sandbox():
    url = "http://127.0.0.1:8080"
    assert local_public_url({}, missing_services({}), url) == url
    assert local_public_url({"LINESYNC_PUBLIC_URL": "https://mine.example"}, missing_services({}), url) is None
    with_line = {"LINE_API_BASE_URL": "https://api.line.me"}
    assert local_public_url(with_line, missing_services(with_line), url) is None
    assert provided_variables(Local(line_port=7002, public_url="http://127.0.0.1:8080"))["LINESYNC_PUBLIC_URL"] \
        == "http://127.0.0.1:8080"
    assert "LINESYNC_PUBLIC_URL" not in provided_variables(Local(line_port=7002))


def test_process_specs_nothing_local():
    specs = process_specs({}, Local(), python="/py", bind="0.0.0.0:80", data_dir="d", admin_bind="127.0.0.1:9999")
    assert [s.name for s in specs] == ["ingress", "worker", "beat"]
    assert specs[0].argv[-2:] == ["--admin-bind", "127.0.0.1:9999"]
    assert "--concurrency" not in specs[1].argv


def test_channel_secret_is_made_once_and_kept_private(tmp_path):
    path = tmp_path / "channel_secret"
    first = channel_secret(path)
    assert len(first) == 32 and int(first, 16) >= 0
    assert channel_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_env_file_can_be_sourced_by_a_shell(tmp_path):
    values = {**provided_variables(EVERYTHING_LOCAL), "ODD": "it's $HOME; `x`"}
    env_file = tmp_path / "env"
    env_file.write_text(env_file_text(values))
    out = subprocess.run(
        ["sh", "-c", f'set -a; . "{env_file}"; set +a; env'], capture_output=True, text=True, check=True
    ).stdout
    seen = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    for k, v in values.items():
        assert seen[k] == v


@pytest.mark.parametrize("bind,url", [
    ("127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("0.0.0.0:9000", "http://127.0.0.1:9000"),
    ("localhost:1", "http://localhost:1"),
])
def test_local_url(bind, url):
    assert local_url(bind) == url


@pytest.mark.parametrize("bind", ["8080", "host:", "host:99999", "host:x"])
def test_bad_bind(bind):
    with pytest.raises(click.BadParameter):
        parse_bind(bind)


def test_banner_names_the_urls():
    text = banner("http://127.0.0.1:8080", provided_variables(EVERYTHING_LOCAL), ".linesync",
                  "http://127.0.0.1:9081")
    assert "http://127.0.0.1:8080/line/events" in text
    assert "http://127.0.0.1:8080/readyz" in text
    assert "http://127.0.0.1:9081/metrics" in text and "http://127.0.0.1:8080/metrics" not in text
    assert "http://127.0.0.1:9081/v1/" in text
    assert "http://127.0.0.1:7001" in text and "http://127.0.0.1:7002" in text
    assert "set -a; . .linesync/env; set +a" in text


def test_second_up_in_the_same_directory_is_refused(tmp_path):
    from shared.errors import LinesyncError

    with up_module.exclusive(tmp_path):
        with pytest.raises(LinesyncError, match="another `linesync up`"):
            with up_module.exclusive(tmp_path):
                pass


def test_exit_code_of_up_reaches_the_shell(monkeypatch):
    """A failed child makes `linesync up` exit non-zero through linesync.cli.main."""
    from linesync import cli

    monkeypatch.setattr(up_module, "_up", lambda *a, **k: 1)
    monkeypatch.setattr("sys.argv", ["linesync", "up"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == 1
