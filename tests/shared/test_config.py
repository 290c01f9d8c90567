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


# ---- values checked for real at start (one line naming the variable) ---------------------------


@pytest.mark.parametrize("value", ["0 3 * * *", "*/15 8-18 * * mon-fri", "0 4 1 jan,jul *", "every 6h"])
def test_resync_schedule_accepts(value):
    assert load_settings({"RESYNC_SCHEDULE": value}).resync_schedule == value


@pytest.mark.parametrize("value, why", [
    ("0 25 * * *", "hour: 25 is outside 0-23"), ("61 3 * * *", "minute: 61"), ("0 3 * * 8", "day of week"),
    ("0 3 * * someday", "day of week"), ("0 3 *", "expected 5 cron fields"), ("every never", "every <N>"),
    ("*/0 * * * *", "step must be positive"),
])
def test_resync_schedule_rejects_naming_the_variable(value, why):
    with pytest.raises(ConfigError) as e:
        load_settings({"RESYNC_SCHEDULE": value})
    assert e.value.variable == "RESYNC_SCHEDULE" and why in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("value, level", [("debug", "DEBUG"), ("INFO", "INFO"), (" Warning ", "WARNING"),
                                          ("error", "ERROR"), ("CRITICAL", "CRITICAL")])
def test_log_level(value, level):
    assert load_settings({"LINESYNC_LOG_LEVEL": value}).log_level == level


@pytest.mark.parametrize("value", ["verbose", "WARN", "10", "trace"])
def test_log_level_rejects(value):
    with pytest.raises(ConfigError, match="^LINESYNC_LOG_LEVEL: is malformed .*DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        load_settings({"LINESYNC_LOG_LEVEL": value})


def test_forward_events_are_names_linesync_supports():
    s = load_settings({"LINESYNC_FORWARD_EVENTS": "message, postback,message,follow,unfollow"})
    assert s.forward_event_types == ("message", "postback", "follow", "unfollow")
    assert load_settings({"LINESYNC_FORWARD_EVENTS": " , "}).forward_event_types == ()
    with pytest.raises(ConfigError) as e:
        load_settings({"LINESYNC_FORWARD_EVENTS": "message,beacon,Follow"})
    assert e.value.variable == "LINESYNC_FORWARD_EVENTS"
    assert "beacon, Follow" in str(e.value) and "message, postback, follow, unfollow" in str(e.value)


@pytest.mark.parametrize("var", ["BRAZE_REST_ENDPOINT", "LINE_API_BASE_URL"])
@pytest.mark.parametrize("url", ["http://rest.iad-01.braze.com", "http://10.0.0.5:9100", "http://braze-sandbox:9100",
                                 "http://localhost.example.com", "http://[2001:db8::1]:80"])
def test_bearer_token_over_plain_http_to_another_host_is_refused(var, url):
    with pytest.raises(ConfigError) as e:
        load_settings({var: url})
    assert e.value.variable == var
    assert "LINESYNC_ALLOW_INSECURE_HTTP=true" in str(e.value) and "\n" not in str(e.value)
    assert load_settings({var: url, "LINESYNC_ALLOW_INSECURE_HTTP": "true"}).allow_insecure_http is True


@pytest.mark.parametrize("url", ["http://localhost:9100", "http://LOCALHOST", "http://127.0.0.1:9100",
                                 "http://127.8.9.10", "http://[::1]:9100", "https://rest.iad-01.braze.com",
                                 "https://10.0.0.5"])
def test_plain_http_on_this_machine_and_https_anywhere_are_fine(url):
    s = load_settings({"BRAZE_REST_ENDPOINT": url, "LINE_API_BASE_URL": url})
    assert s.braze_rest_endpoint == url.rstrip("/")


def test_public_url_and_the_webhook_url():
    assert load_settings({}).public_url is None and load_settings({}).webhook_url is None
    s = load_settings({"LINESYNC_PUBLIC_URL": "https://hooks.example.com/linesync/"})
    assert s.public_url == "https://hooks.example.com/linesync"
    assert s.webhook_url == "https://hooks.example.com/linesync/line/events"
    assert load_settings({"LINESYNC_PUBLIC_URL": "http://127.0.0.1:8080"}).webhook_url == \
        "http://127.0.0.1:8080/line/events"
    for bad in ("hooks.example.com", "https://hooks.example.com/line/events"):
        with pytest.raises(ConfigError, match="^LINESYNC_PUBLIC_URL: is malformed"):
            load_settings({"LINESYNC_PUBLIC_URL": bad})


def test_redacted_is_readable_text():
    s = load_settings({"REDIS_URL": f"redis://app:{SECRET}@redis.internal:6380/2", "BRAZE_API_KEY": SECRET,
                       "LINESYNC_FORWARD_EVENTS": "message,follow"})
    red = s.redacted()
    assert red["REDIS_URL"] == "redis://app:***@redis.internal:6380/2"
    assert red["BRAZE_API_KEY"] == "<set>" and red["LINE_CHANNEL_SECRET"] == "<unset>"
    assert red["LINESYNC_FORWARD_EVENTS"] == "message,follow"
    assert red["RESYNC_ON_START"] == "true" and red["BRAZE_REST_ENDPOINT"] == "<unset>"
    assert red["BRAZE_TRACK_RATE_LIMIT"] == "3000/3s"
    plain = "redis://localhost:6379/0"
    assert load_settings({"REDIS_URL": plain}).redacted()["REDIS_URL"] == plain
    assert set(red) == set(env_names().values())


def test_defaults_names_the_variables_left_at_their_default():
    d = load_settings({"BRAZE_TRACK_BATCH_SIZE": "50", "LINESYNC_KEY_PREFIX": "linesync"}).defaults()
    assert "BRAZE_TRACK_BATCH_SIZE" not in d
    assert {"LINESYNC_KEY_PREFIX", "RESYNC_SCHEDULE", "LINESYNC_PUBLIC_URL"} <= d


# ---- BRAZE_STATE_MODE: a workspace without Braze's LINE channel needs no subscription group -------


def test_state_mode_defaults_to_the_subscription_group_and_is_checked():
    assert load_settings({}).braze_state_mode == "subscription_group"
    assert load_settings({"BRAZE_STATE_MODE": " Attributes "}).braze_state_mode == "attributes"
    with pytest.raises(ConfigError) as e:
        load_settings({"BRAZE_STATE_MODE": "attribute"})
    assert e.value.variable == "BRAZE_STATE_MODE" and "subscription_group, attributes, both" in str(e.value)


@pytest.mark.parametrize("mode, needs_group", [("subscription_group", True), ("both", True), ("attributes", False)])
def test_the_worker_needs_the_group_id_unless_attributes_only(mode, needs_group):
    env = {"REDIS_URL": "redis://localhost", "BRAZE_REST_ENDPOINT": "https://rest.iad-01.braze.com",
           "BRAZE_API_KEY": "k", "BRAZE_STATE_MODE": mode}
    settings = load_settings(env)
    if needs_group:
        with pytest.raises(ConfigError) as e:
            settings.require(*ROLE_REQUIREMENTS["worker"])
        assert e.value.variable == "BRAZE_SUBSCRIPTION_GROUP_ID" and "BRAZE_STATE_MODE=attributes" in str(e.value)
    else:
        assert settings.require(*ROLE_REQUIREMENTS["worker"]) is settings


def test_ports_and_the_admin_bind_come_from_the_environment():
    s = load_settings({})
    assert (s.worker_metrics_port, s.beat_metrics_port, s.admin_bind) == (9464, 9465, "127.0.0.1:9080")
    s = load_settings({"LINESYNC_WORKER_METRICS_PORT": "9500", "LINESYNC_BEAT_METRICS_PORT": "0",
                       "LINESYNC_ADMIN_BIND": "0.0.0.0:9180"})
    assert (s.worker_metrics_port, s.beat_metrics_port, s.admin_bind) == (9500, 0, "0.0.0.0:9180")
    assert load_settings({"LINESYNC_ADMIN_BIND": "unix:/run/linesync/admin.sock"}).admin_bind == \
        "unix:/run/linesync/admin.sock"


@pytest.mark.parametrize("var, value", [("LINESYNC_ADMIN_BIND", "9080"), ("LINESYNC_ADMIN_BIND", "host:99999"),
                                        ("LINESYNC_ADMIN_BIND", ":9080"), ("LINESYNC_BEAT_METRICS_PORT", "70000"),
                                        ("LINESYNC_WORKER_METRICS_PORT", "x")])
def test_malformed_ports_and_binds_name_the_variable(var, value):
    with pytest.raises(ConfigError) as e:
        load_settings({var: value})
    assert e.value.variable == var
