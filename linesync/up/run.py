"""`linesync up` carrying its plan out under a :class:`~linesync.supervisor.Supervisor`.

Services (Redis, the sandboxes) start first and must accept connections in
time; then the applications (ingress, worker, beat). While they run, the
ingress's ``/readyz`` is probed until it answers 200, and then the banner is
printed (or, after READY_WARN_AFTER, a warning that it has not).
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping

from linesync.supervisor import ChildExited, ProcessSpec, StopRequested, Supervisor
from linesync.up.plan import DEFAULT_UP_ADMIN_BIND, SANDBOX_FOLLOWERS, TIER_APP, Local, local_url
from shared.errors import LinesyncError

# How long services get to accept connections before `up` gives up on them.
REDIS_START_TIMEOUT = 15.0
SANDBOX_START_TIMEOUT = 20.0
# After this long without /readyz answering 200, `up` says so (and keeps waiting).
READY_WARN_AFTER = 60.0
READY_PROBE_INTERVAL = 0.5


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def banner(ingress: str, provided: Mapping[str, str], data_dir: str, admin: str | None = None,
           channels: list[str] | None = None) -> str:
    admin = admin or local_url(DEFAULT_UP_ADMIN_BIND)
    rows = [
        ("webhook URL", f"{ingress}/line/events"),
        ("readiness", f"{ingress}/readyz"),
        ("status page", f"{admin}/status"),
        ("metrics", f"{admin}/metrics"),
        ("admin API", f"{admin}/v1/... (with LINESYNC_ADMIN_TOKEN)"),
    ]
    if "REDIS_URL" in provided:
        rows.append(("Redis", f"{provided['REDIS_URL']} (embedded, data in {data_dir}/redis)"))
    if "BRAZE_REST_ENDPOINT" in provided:
        rows.append(("Braze sandbox", provided["BRAZE_REST_ENDPOINT"]))
    if "LINE_API_BASE_URL" in provided:
        rows.append(("LINE sandbox", f"{provided['LINE_API_BASE_URL']} ({SANDBOX_FOLLOWERS} followers)"))
    width = max(len(k) for k, _ in rows)
    lines = ["", "linesync is up."] + [f"  {k:<{width}}  {v}" for k, v in rows] + list(channels or [])
    if provided:
        lines.append(f"In another terminal: set -a; . {data_dir}/env; set +a")
    lines += [
        f"Then try: linesync send-test-webhook --url {ingress}/line/events ; linesync status",
        "Check the whole chain: linesync doctor --send-test",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def run(
    supervisor: Supervisor,
    specs: list[ProcessSpec],
    local: Local,
    ingress_url: str,
    provided: Mapping[str, str],
    data_dir: str,
    *,
    admin_url: str | None = None,
    channels: list[str] | None = None,
) -> int:
    try:
        for spec in specs:
            if spec.tier == TIER_APP:
                continue
            supervisor.start(spec)
        if local.redis_port is not None:
            wait(supervisor, "redis", lambda: port_open(local.redis_port), REDIS_START_TIMEOUT)
        for name, port in (("braze", local.braze_port), ("line", local.line_port),
                           *(("channel", p) for p in local.sandbox_ports)):
            if port is not None:
                wait(supervisor, f"{name} sandbox", lambda p=port: port_open(p), SANDBOX_START_TIMEOUT)
        for spec in specs:
            if spec.tier == TIER_APP:
                supervisor.start(spec)
    except StopRequested:
        supervisor.echo("linesync up: stopping ...")
        supervisor.stop()
        return 0
    except ChildExited as e:
        supervisor.echo(f"linesync up: {e}; stopping everything")
        supervisor.stop()
        return 1
    except LinesyncError as e:
        supervisor.echo(f"linesync up: {e}; stopping everything")
        supervisor.stop()
        return 1
    except BaseException:
        supervisor.stop()
        raise

    started = time.monotonic()
    state = {"ready": False, "warned": False, "next_probe": 0.0}

    def on_tick() -> None:
        now = time.monotonic()
        if state["ready"] or now < state["next_probe"]:
            return
        state["next_probe"] = now + READY_PROBE_INTERVAL
        if http_ok(f"{ingress_url}/readyz"):
            state["ready"] = True
            supervisor.echo(banner(ingress_url, provided, data_dir, admin_url, channels))
        elif not state["warned"] and now - started > READY_WARN_AFTER:
            state["warned"] = True
            supervisor.echo(f"linesync up: {ingress_url}/readyz has not answered 200 after "
                            f"{READY_WARN_AFTER:.0f}s; still waiting")

    try:
        return supervisor.run(on_tick)
    except BaseException:
        supervisor.stop()
        raise


def wait(supervisor: Supervisor, what: str, predicate: Callable[[], bool], timeout: float) -> None:
    if not supervisor.wait_until(predicate, timeout):
        raise LinesyncError(f"{what} did not accept connections within {timeout:.0f}s")
