"""Settings: one clear error naming the variable; secrets never shown."""

from __future__ import annotations

import pytest

from shared.config import ROLE_REQUIREMENTS, RateLimit, Settings, env_names, load_settings, parse_rate
from shared.errors import ConfigError

SECRET = "sup3r-s3cret-value"


def test_defaults_from_an_empty_environment():
    s = load_settings({})
    assert s.ingress_max_body_bytes == 1024 * 1024
    assert s.line_api_base_url == "https://api.line.me"
    assert s.braze_track_rate_limit == RateLimit(3000, 3.0)


@pytest.mark.parametrize("var", ["REDIS_URL", "LINE_CHANNEL_SECRET"])
def test_ingress_role_names_the_missing_variable(var):
    env = {"REDIS_URL": "redis://localhost:6379/0", "LINE_CHANNEL_SECRET": SECRET}
    del env[var]
    with pytest.raises(ConfigError) as e:
        load_settings(env).require(*ROLE_REQUIREMENTS["ingress"])
    assert e.value.variable == var
    assert str(e.value).startswith(f"{var}: ")
    assert "\n" not in str(e.value)


def test_empty_value_counts_as_missing():
    with pytest.raises(ConfigError, match="LINE_CHANNEL_SECRET"):
        load_settings({"REDIS_URL": "redis://x", "LINE_CHANNEL_SECRET": ""}).require("line_channel_secret")


@pytest.mark.parametrize(
    "var, value",
    [
        ("REDIS_URL", f"http://user:{SECRET}@host:6379"),
        ("REDIS_URL", SECRET),
        ("LINE_CHANNEL_SECRET", "   "),
        ("BRAZE_API_KEY", "  "),
        ("INGRESS_MAX_BODY_BYTES", "0"),
        ("BRAZE_TRACK_RATE_LIMIT", "fast"),
        ("BRAZE_REST_ENDPOINT", "rest.iad-01.braze.com"),
        ("RESYNC_ON_START", "maybe"),
    ],
)
def test_malformed_variable_is_named_and_its_value_never_shown(var, value):
    with pytest.raises(ConfigError) as e:
        load_settings({var: value})
    assert e.value.variable == var
    assert str(e.value).startswith(f"{var}: is malformed")
    assert "\n" not in str(e.value)
    assert not value.strip() or value not in str(e.value)
    assert SECRET not in str(e.value)


@pytest.mark.parametrize("var, value", [("INGRESS_MAX_BODY_BYTES", "lots"), ("BRAZE_TIMEOUT_SECONDS", "soon")])
def test_malformed_number_value_is_not_echoed(var, value):
    with pytest.raises(ConfigError) as e:
        load_settings({var: value})
    assert value not in str(e.value)


def test_secrets_are_not_in_the_redacted_view():
    s = load_settings({"REDIS_URL": f"redis://:{SECRET}@h:1/0", "LINE_CHANNEL_SECRET": SECRET,
                       "BRAZE_API_KEY": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": SECRET})
    assert SECRET not in str(s.redacted())
    assert s.redacted()["LINE_CHANNEL_SECRET"] == "<set>"
    assert s.redacted()["LINESYNC_ADMIN_TOKEN"] == "<unset>"


def test_redis_password_not_in_repr():
    assert SECRET not in repr(Settings(redis_url=f"redis://:{SECRET}@h:1/0"))


def test_line_channel_secret_not_in_repr():
    assert SECRET not in repr(Settings(line_channel_secret=SECRET, braze_api_key=SECRET))


def test_environment_wins_over_dotenv(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("INGRESS_MAX_BODY_BYTES=100\nLINESYNC_KEY_PREFIX=fromfile\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INGRESS_MAX_BODY_BYTES", "200")
    monkeypatch.delenv("LINESYNC_KEY_PREFIX", raising=False)
    s = load_settings()
    assert s.ingress_max_body_bytes == 200
    assert s.key_prefix == "fromfile"


@pytest.mark.parametrize(
    "text, expected",
    [("3000/3s", (3000, 3.0)), ("100/s", (100, 1.0)), ("20000/1m", (20000, 60.0)), ("5/500ms", (5, 0.5))],
)
def test_parse_rate(text, expected):
    rate = parse_rate(text)
    assert (rate.requests, rate.period) == expected


@pytest.mark.parametrize("text", ["", "3000", "0/1s", "10/0s", "x/s", "10/3d"])
def test_parse_rate_rejects(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_every_spec_variable_is_known():
    names = set(env_names().values())
    assert {"REDIS_URL", "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "LINE_API_BASE_URL",
            "BRAZE_REST_ENDPOINT", "BRAZE_API_KEY", "BRAZE_SUBSCRIPTION_GROUP_ID", "BRAZE_TRACK_BATCH_SIZE",
            "BRAZE_TRACK_RATE_LIMIT", "INGRESS_MAX_BODY_BYTES", "LINESYNC_ADMIN_TOKEN"} <= names
