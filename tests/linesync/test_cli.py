"""Every subcommand the spec names exists and answers --help."""

import pytest
from click.testing import CliRunner

from linesync.cli import COMMANDS, cli

SPEC_COMMANDS = {"ingress", "worker", "beat", "up", "status", "resync", "dlq", "send-test-webhook", "link",
                 "doctor", "config"}


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


def test_version_from_the_package_metadata():
    from importlib import metadata

    res = CliRunner().invoke(cli, ["--version"])
    assert res.exit_code == 0
    assert res.output == f"linesync {metadata.version('linesync')}\n"


def test_version_falls_back_to_pyproject(monkeypatch):
    import re
    from importlib import metadata
    from pathlib import Path

    from linesync.cli import package_version

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert package_version() == re.search(r'^version = "(.+)"', pyproject, re.M).group(1)
