"""Every subcommand the spec names exists and answers --help."""

import pytest
from click.testing import CliRunner

from linesync.cli import COMMANDS, cli

SPEC_COMMANDS = {"ingress", "worker", "beat", "up", "status", "resync", "dlq", "send-test-webhook", "link"}


def test_the_spec_commands_are_all_there():
    assert SPEC_COMMANDS <= set(cli.list_commands(None))
    assert set(cli.list_commands(None)) == set(COMMANDS)  # every listed module really exists


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help(name):
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


@pytest.mark.parametrize("sub", ["list", "replay", "purge"])
def test_dlq_subcommands_help(sub):
    assert CliRunner().invoke(cli, ["dlq", sub, "--help"]).exit_code == 0
