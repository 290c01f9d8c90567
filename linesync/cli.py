"""`linesync` console script: one click group; each subcommand lives in linesync/commands/."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import click

from shared.errors import ConfigError

# subcommand name -> "module:attribute" (imported lazily so `linesync --help` is quick
# and a command's heavy imports are paid only when it runs).
COMMANDS: dict[str, str] = {
    "ingress": "linesync.commands.ingress:ingress",
    "send-test-webhook": "linesync.commands.send_test_webhook:send_test_webhook",
    "worker": "linesync.commands.worker:worker",
    "beat": "linesync.commands.worker:beat",
    "up": "linesync.commands.up:up",
    "status": "linesync.commands.status:status",
    "state": "linesync.commands.state:state_command",
    "pauses": "linesync.commands.pauses:pauses",
    "dlq": "linesync.commands.dlq:dlq",
    "resync": "linesync.commands.resync:resync",
    "link": "linesync.commands.link:link",
    "unlink": "linesync.commands.link:unlink",
    "identify": "linesync.commands.link:identify",
    "merge": "linesync.commands.link:merge",
    "sandbox": "linesync.commands.sandbox:sandbox",
    "doctor": "linesync.commands.doctor:doctor",
    "config": "linesync.commands.config:config",
}


def package_version() -> str:
    """The installed distribution's version; from a source tree without one, pyproject.toml's."""
    from importlib import metadata  # ~50 ms: paid by --version only

    try:
        return metadata.version("linesync")
    except metadata.PackageNotFoundError:
        pass
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        m = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.M)
    except OSError:
        m = None
    return m.group(1) if m else "unknown"


class _LazyVersion:
    """click.version_option formats the version with %s only when --version is given: look it up then."""

    def __str__(self) -> str:
        return package_version()


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name == module:  # not built yet
                return None
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_LazyVersion(), "--version", prog_name="linesync",  # type: ignore[arg-type]
                      message="%(prog)s %(version)s")
def cli() -> None:
    """linesync: keep Braze in step with a LINE Official Account's followers."""


def main() -> None:
    try:
        rv = cli.main(standalone_mode=False)
    except ConfigError as e:
        click.echo(f"linesync: configuration error: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    # Without standalone mode click returns ctx.exit()'s code instead of exiting with it.
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
