"""`linesync config`: the effective settings, secrets redacted; a malformed one stops it, named."""

import json
import os

import pytest
from click.testing import CliRunner

from linesync import cli as cli_module
from linesync.cli import cli
from shared.config import env_names

SECRET = "hunter2-very-secret"


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in list(os.environ):
        if k in set(env_names().values()):
            monkeypatch.delenv(k)
    return tmp_path


def test_prints_every_setting_with_secrets_redacted(clean_env):
    (clean_env / ".env").write_text(f"BRAZE_API_KEY={SECRET}\nBRAZE_TRACK_BATCH_SIZE=50\n")
    env = {"REDIS_URL": f"redis://:{SECRET}@redis.internal:6379/0", "LINE_CHANNEL_SECRET": SECRET}
    res = CliRunner().invoke(cli, ["config"], env=env)
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output
    lines = {line.split()[0]: line.split()[1:] for line in res.output.splitlines()}
    assert set(lines) == set(env_names().values())
    assert lines["REDIS_URL"] == ["redis://:***@redis.internal:6379/0"]
    assert lines["BRAZE_API_KEY"] == ["<set>"]
    assert lines["BRAZE_TRACK_BATCH_SIZE"] == ["50"]
    assert lines["BRAZE_TRACK_RATE_LIMIT"] == ["3000/3s", "(default)"]
    assert lines["LINESYNC_ADMIN_TOKEN"] == ["<unset>"]


def test_json(clean_env):
    res = CliRunner().invoke(cli, ["config", "--json"], env={"LINE_CHANNEL_ACCESS_TOKEN": SECRET})
    doc = json.loads(res.output)
    assert doc["LINE_CHANNEL_ACCESS_TOKEN"] == "<set>" and doc["LINESYNC_KEY_PREFIX"] == "linesync"
    assert SECRET not in res.output


def test_a_malformed_setting_is_one_line_naming_it(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("RESYNC_SCHEDULE", "0 25 * * *")
    monkeypatch.setattr("sys.argv", ["linesync", "config"])
    with pytest.raises(SystemExit) as exc:
        cli_module.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("linesync: configuration error: RESYNC_SCHEDULE: is malformed (hour: 25")
    assert "\n" not in err


@pytest.mark.parametrize("mode, state_line, group_line", [
    (None, ["subscription_group", "(default)", "->", "subscription", "group", "sg-1"], ["sg-1"]),
    ("attributes", ["attributes", "->", "custom", "attributes", "line_follow_state", "and", "line_follow_state_at"],
     ["sg-1", "(not", "used:", "BRAZE_STATE_MODE=attributes)"]),
    ("both", ["both", "->", "subscription", "group", "sg-1", "and", "custom", "attributes", "line_follow_state",
              "and", "line_follow_state_at"], ["sg-1"]),
])
def test_says_which_state_mode_is_in_force(clean_env, mode, state_line, group_line):
    env = {"BRAZE_SUBSCRIPTION_GROUP_ID": "sg-1", **({"BRAZE_STATE_MODE": mode} if mode else {})}
    res = CliRunner().invoke(cli, ["config"], env=env)
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line.split()[1:] for line in res.output.splitlines()}
    assert lines["BRAZE_STATE_MODE"] == state_line
    assert lines["BRAZE_SUBSCRIPTION_GROUP_ID"] == group_line
    assert json.loads(CliRunner().invoke(cli, ["config", "--json"], env=env).output)["BRAZE_STATE_MODE"] == (
        mode or "subscription_group")
