"""compose.yaml, Dockerfile, .dockerignore and .env.example agree with the code.

Docker is not needed: compose.yaml is read with PyYAML when it is installed,
otherwise with the small parser below, which understands the YAML subset
compose.yaml is kept to (block mappings, block lists of scalars, flow lists of
scalars, comments on their own line). When PyYAML is present the two readings
must agree, so the file cannot drift out of that subset unnoticed.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from linesync.cli import COMMANDS, cli
from shared.config import env_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
REDIS_URL_IN_COMPOSE = "redis://redis:6379/0"
SPEC_VARIABLES = (
    "REDIS_URL", "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "LINE_API_BASE_URL",
    "BRAZE_REST_ENDPOINT", "BRAZE_API_KEY", "BRAZE_SUBSCRIPTION_GROUP_ID",
    "BRAZE_TRACK_BATCH_SIZE", "BRAZE_TRACK_RATE_LIMIT", "INGRESS_MAX_BODY_BYTES",
    "LINESYNC_ADMIN_TOKEN",
)


# -- a reader for the YAML subset ----------------------------------------------


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if text.startswith("["):
        return _flow_list(text)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    if text in ("", "~", "null"):
        return None
    return text


def _flow_list(text: str) -> list[Any]:
    assert text.startswith("[") and text.endswith("]"), text
    items, current, quote = [], "", None
    for ch in text[1:-1]:
        if quote:
            current += ch
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            current += ch
        elif ch == ",":
            items.append(_scalar(current))
            current = ""
        else:
            current += ch
    if current.strip():
        items.append(_scalar(current))
    return items


def parse_subset(text: str) -> Any:
    lines = [
        (len(line) - len(line.lstrip(" ")), line.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1].startswith("- "):
            out_list = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                out_list.append(_scalar(lines[i][1][2:]))
                i += 1
            return out_list, i
        out: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent:
            key, sep, rest = lines[i][1].partition(":")
            assert sep, f"not a mapping entry: {lines[i][1]!r}"
            i += 1
            if rest.strip():
                out[key.strip()] = _scalar(rest)
            elif i < len(lines) and lines[i][0] > indent:
                out[key.strip()], i = block(i, lines[i][0])
            else:
                out[key.strip()] = None
        return out, i

    result, end = block(0, lines[0][0])
    assert end == len(lines), f"unparsed from line {lines[end]!r}"
    return result


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = COMPOSE.read_text()
    try:
        import yaml
    except ImportError:
        return parse_subset(text)
    return yaml.safe_load(text)


def test_subset_reader_agrees_with_pyyaml():
    yaml = pytest.importorskip("yaml")
    text = COMPOSE.read_text()
    assert parse_subset(text) == yaml.safe_load(text)


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _linesync_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if _command(s)[:1] == ["linesync"]}


# -- compose.yaml ---------------------------------------------------------------


def test_ingress_worker_and_beat_run_from_one_image(compose):
    services = _linesync_services(compose)
    assert {_command(s)[1] for s in services.values()} >= {"ingress", "worker", "beat"}
    assert len({(s.get("build"), s.get("image")) for s in services.values()}) == 1
    assert all(s.get("build") == "." for s in services.values())


def test_every_linesync_service_uses_a_real_subcommand(compose):
    for name, service in _linesync_services(compose).items():
        argv = _command(service)
        assert argv[1] in COMMANDS, f"{name}: `linesync {argv[1]}` is not a linesync command"


def test_every_linesync_command_line_parses(compose):
    """The options given in compose.yaml exist (checked with --help, so nothing runs)."""
    runner = CliRunner()
    for name, service in _linesync_services(compose).items():
        argv = _command(service)
        if cli.get_command(None, argv[1]) is None:  # type: ignore[arg-type]
            pytest.skip(f"`linesync {argv[1]}` is not written yet")
        result = runner.invoke(cli, [*argv[1:], "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"


def test_linesync_services_reach_the_redis_service(compose):
    for name, service in _linesync_services(compose).items():
        assert service["environment"]["REDIS_URL"] == REDIS_URL_IN_COMPOSE, name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert ".env" in service["env_file"], name


def _bytes(size: str) -> int:
    """A redis.conf memory size (``1gb``, ``512mb``, ``100000``) in bytes."""
    m = re.fullmatch(r"(\d+)(k|kb|m|mb|g|gb)?", size.lower())
    assert m, f"not a Redis memory size: {size!r}"
    unit = {None: 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
    return int(m.group(1)) * unit[m.group(2)]


def test_redis_is_durable_and_never_evicts(compose):
    redis = compose["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    argv = _command(redis)
    command = " ".join(argv)
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    # noeviction only means something with a limit: without one Redis grows until it is killed.
    assert "--maxmemory" in argv, "set --maxmemory (about 75 % of the host's memory)"
    assert _bytes(argv[argv.index("--maxmemory") + 1]) >= 100 * 1024**2
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data"
    assert volume in compose["volumes"]


def test_ingress_is_health_checked_on_readyz(compose):
    ingress = compose["services"]["ingress"]
    assert "--bind" in _command(ingress)
    bind = _command(ingress)[_command(ingress).index("--bind") + 1]
    port = bind.rpartition(":")[2]
    assert any("/readyz" in str(part) and f":{port}/" in str(part) for part in ingress["healthcheck"]["test"])
    assert any(str(p).endswith(f":{port}") for p in ingress["ports"])


# -- Dockerfile, .dockerignore, .env.example -------------------------------------


def test_dockerfile_installs_the_project_on_python_311_slim():
    text = (ROOT / "Dockerfile").read_text()
    # The default base is python:3.11-slim (PYTHON_IMAGE picks another, e.g. tests/test_image.py's stand-in).
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim\s*$", text, re.M)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}\s*$", text, re.M)
    assert re.search(r"pip install\b.* \.\s*(\\|&&|$)", text, re.M)
    assert re.search(r"^USER (?!root)", text, re.M)


def test_dockerfile_installs_exactly_the_lock_file_then_the_project_without_dependencies():
    text = (ROOT / "Dockerfile").read_text()
    lock = re.search(r"^RUN pip install --require-hashes --no-deps --requirement requirements\.lock\s*$", text, re.M)
    assert lock, "install requirements.lock (made by `python3 dev.py lock`) with --require-hashes --no-deps"
    assert re.search(r"^COPY requirements\.lock \./\s*$", text, re.M).start() < lock.start()
    assert lock.start() < text.index("COPY . .")  # cached apart from the code
    project = re.search(r"pip install --no-deps \.(\s|$)", text)
    assert project and "pip check" in text[project.end():]
    assert "requirements.lock" not in (ROOT / ".dockerignore").read_text().split()


def test_dockerignore_keeps_secrets_and_local_state_out():
    entries = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".git", ".linesync"} <= entries


def test_env_example_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M))
    assert set(SPEC_VARIABLES) <= listed
    assert set(env_names().values()) <= listed, "add new settings to .env.example"
