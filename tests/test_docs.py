"""The documentation stands on its own: no pointer outside the repository, no path that is not in it,
and docs/reference.md names every setting the code reads."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from shared.config import env_names

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
# What operators read: the README, every page under docs/ and deploy/, the settings template.
DOCS = sorted([ROOT / "README.md", ROOT / ".env.example", *ROOT.glob("docs/*.md"), *ROOT.glob("deploy/**/*.md")])
# Top-level names a doc may point into (a path starting with one of these must exist).
TOP = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") and not p.name.endswith(".egg-info")} | {
    ".ci", ".env.example", "scripts"}
# A relative path: a top-level name, then one or more components (a trailing slash for a directory).
PATH_RE = re.compile(r"(?<![\w./{}:$-])((?:\.?[\w-]+)(?:/[\w.*-]+)+/?|[\w-]+/)")


def _doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def paths_in(text: str) -> set[str]:
    """Repository paths a doc names: in backticks, links or prose, whose first part is a top-level name."""
    quoted = set(re.findall(r"`([^`\s]+)`", text))
    out = set()
    for m in PATH_RE.finditer(text):
        p = m.group(1).rstrip(".")
        if p.split("/")[0] not in TOP or "*" in p:
            continue
        # In prose a word pair like "ingress/hello" is no path: there it needs a suffix or a trailing slash.
        if p in quoted or p.endswith("/") or "." in p.rsplit("/", 1)[-1]:
            out.add(p)
    return out


def test_paths_are_found_in_text():
    text = ("see `docs/guide.md`, [x](docs/reference.md), bench/ingress/run.py, shared/lua/ and "
            "`tests/shared/test_backoff.py`. Not https://api.line.me/v2/bot/info, /users/track, {linesync}:state, "
            "deploy/* or .linesync/env; ingress/hello ratio; `bench/ingress`.")
    assert paths_in(text) == {"docs/guide.md", "docs/reference.md", "bench/ingress/run.py", "shared/lua/",
                              "tests/shared/test_backoff.py", "bench/ingress"}


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_no_doc_points_outside_the_repository(doc):
    text = doc.read_text()
    assert not re.search(r"\bSPEC\b|SPEC\.md|§|\.\./shared", text), f"{_doc_id(doc)} cites a text not in the repository"


@pytest.mark.parametrize("doc", DOCS, ids=_doc_id)
def test_every_path_a_doc_names_exists(doc):
    text = doc.read_text()
    missing = {p for p in paths_in(text) if not (ROOT / p).exists()}
    # Markdown links are relative to the page.
    for link in re.findall(r"\]\(([^)#\s]+)", text):
        if "://" not in link and not link.startswith("mailto:") and not (doc.parent / link).exists():
            missing.add(link)
    assert not missing, f"{_doc_id(doc)} names paths that do not exist: {sorted(missing)}"


def test_the_reference_lists_every_setting():
    text = REFERENCE.read_text()
    missing = [env for env in env_names().values() if f"`{env}`" not in text]
    assert not missing, f"docs/reference.md does not list {missing}"


def test_code_and_settings_do_not_cite_the_old_spec():
    hits = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("tests", "node_modules")
                   and not d.endswith(".egg-info")]
        for name in files:
            path = Path(folder, name)
            if path.suffix in (".py", ".lua", ".toml", ".yaml", ".yml") or name == "Dockerfile":
                if re.search(r"\bSPEC\b|SPEC\.md|§|scripts/lock\.py", path.read_text(errors="replace")):
                    hits.append(str(path.relative_to(ROOT)))
    assert not hits, f"cite what is not in the repository: {hits}"


def _commands():
    """(full name, click command) of every `linesync` command and subcommand."""
    import click

    from linesync.cli import COMMANDS, cli

    out = []
    for name in COMMANDS:
        cmd = cli.get_command(None, name)
        out.append((name, cmd))
        if isinstance(cmd, click.Group):
            out.extend((f"{name} {sub}", cmd.commands[sub]) for sub in cmd.commands)
    return out


def test_the_reference_lists_every_command_and_option():
    text = REFERENCE.read_text()
    missing = []
    for name, cmd in _commands():
        if f"`linesync {name}" not in text and f"linesync {name}" not in text:
            missing.append(f"linesync {name}")
        for param in cmd.params:
            for opt in getattr(param, "opts", []) + getattr(param, "secondary_opts", []):
                if opt.startswith("--") and opt != "--help" and opt not in text:
                    missing.append(f"linesync {name} {opt}")
    assert not missing, f"docs/reference.md does not document {missing}"


def test_the_defaults_in_the_reference_are_the_codes():
    from shared import config

    rows = re.findall(r"^\| `([A-Z_]+)`[^|]*\| ([^|]*)\|", REFERENCE.read_text(), re.M)
    fields = {f.env: (name, f) for name, f in config._FIELDS.items()}
    checked = 0
    for env, default in rows:
        if env not in fields:
            continue
        m = re.match(r"\s*`([^`]+)`", default)
        if not m:
            continue  # unset, required, or said in words
        name, field = fields[env]
        assert field.parse(m.group(1)) == getattr(config.Settings(), name), f"{env}: the reference says {m.group(1)}"
        checked += 1
    assert checked >= 25
