"""A tiny process supervisor for ``linesync up``.

It starts child processes, prefixes each line they print with their name, and
stops them all together:

1. A stop is requested (SIGINT/SIGTERM via :meth:`Supervisor.install_signal_handlers`,
   or :meth:`Supervisor.request_stop`), or a child exits on its own (a failure).
2. Children are stopped by tier, highest first (applications before the
   services they use): each child of the tier gets SIGTERM, the tier gets
   ``stop_timeout`` seconds in all, then what is left gets SIGKILL, together with
   its own children (every child leads its own process group).
3. A second stop request while stopping skips the wait and kills at once.

Children run in their own process group, so a Ctrl-C in the terminal reaches
only the supervisor, which then stops them in order instead of all at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

# How long a tier of children gets between SIGTERM and SIGKILL.
DEFAULT_STOP_TIMEOUT = 15.0
# How often the supervisor checks on its children.
DEFAULT_POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None  # the child's whole environment; None = inherit
    cwd: str | None = None
    tier: int = 0  # higher tiers are stopped first


@dataclass
class Child:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes]
    reader: threading.Thread
    expected_exit: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()


class ChildExited(Exception):
    """A child exited while nobody asked it to."""

    def __init__(self, child: Child):
        self.child = child
        super().__init__(f"{child.name} exited unexpectedly ({describe_exit(child.proc.returncode)})")


class StopRequested(Exception):
    """SIGINT/SIGTERM arrived while waiting for something."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


@dataclass
class Supervisor:
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    poll_interval: float = DEFAULT_POLL_INTERVAL
    color: bool | None = None  # None: only when ``out`` is a terminal

    def __post_init__(self) -> None:
        self.children: list[Child] = []
        self._lock = threading.Lock()
        self._stop_requests = 0
        self._width = 8
        if self.color is None:
            self.color = hasattr(self.out, "isatty") and self.out.isatty() and "NO_COLOR" not in os.environ

    # -- output -------------------------------------------------------------

    def echo(self, text: str) -> None:
        """Print a line of the supervisor's own, unprefixed, between children's lines."""
        with self._lock:
            self.out.write(text if text.endswith("\n") else text + "\n")
            self.out.flush()

    def _prefix(self, name: str, index: int) -> str:
        label = f"{name:<{self._width}} | "
        if self.color:
            return f"\033[{31 + index % 6}m{label}\033[0m"
        return label

    def _pump(self, stream: IO[bytes], prefix: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._lock:
                self.out.write(prefix + line + "\n")
                self.out.flush()
        stream.close()

    # -- lifecycle ----------------------------------------------------------

    def start(self, spec: ProcessSpec) -> Child:
        self._width = max(self._width, len(spec.name))
        env = dict(spec.env if spec.env is not None else os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")  # lines appear as they are printed
        proc = subprocess.Popen(
            list(spec.argv),
            env=env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        assert proc.stdout is not None
        reader = threading.Thread(
            target=self._pump, args=(proc.stdout, self._prefix(spec.name, len(self.children))),
            name=f"output-{spec.name}", daemon=True,
        )
        reader.start()
        child = Child(spec, proc, reader)
        self.children.append(child)
        return child

    @property
    def stop_requested(self) -> bool:
        return self._stop_requests > 0

    def request_stop(self) -> None:
        self._stop_requests += 1

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM request a stop (call from the main thread)."""
        def handler(signum: int, frame: object) -> None:
            self.request_stop()
        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def check(self) -> None:
        """Raise :class:`StopRequested` or :class:`ChildExited` if either happened."""
        if self.stop_requested:
            raise StopRequested()
        for child in self.children:
            if not child.expected_exit and child.proc.poll() is not None:
                raise ChildExited(child)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait for ``predicate()`` to be true, watching the children meanwhile.

        Returns False on timeout; raises like :meth:`check`.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_interval)

    def run(self, on_tick: Callable[[], None] | None = None) -> int:
        """Supervise until a stop is requested (→ 0) or a child exits (→ 1); stop all either way."""
        try:
            while True:
                self.check()
                if on_tick is not None:
                    on_tick()
                time.sleep(self.poll_interval)
        except StopRequested:
            self.echo("linesync: stopping ...")
            self.stop()
            return 0
        except ChildExited as e:
            self.echo(f"linesync: {e}; stopping everything")
            self.stop()
            return 1

    def stop(self) -> None:
        """Stop every child, highest tier first (see the module docstring)."""
        requests_at_start = self._stop_requests
        for tier in sorted({c.spec.tier for c in self.children}, reverse=True):
            group = [c for c in self.children if c.spec.tier == tier]
            for child in group:
                child.expected_exit = True
                _signal(child, signal.SIGTERM, group=False)
            deadline = time.monotonic() + self.stop_timeout
            while any(c.proc.poll() is None for c in group):
                if time.monotonic() >= deadline or self._stop_requests > requests_at_start:
                    break
                time.sleep(min(self.poll_interval, 0.05))
            for child in group:
                if child.proc.poll() is None:
                    self.echo(f"linesync: {child.name} did not stop in time; killing it")
                # Whatever the leader left behind (pool processes, gunicorn workers) goes too.
                _signal(child, signal.SIGKILL, group=True)
                child.proc.wait()
        for child in self.children:
            child.reader.join(timeout=2)


def _signal(child: Child, sig: int, *, group: bool) -> None:
    try:
        if group:
            os.killpg(child.proc.pid, sig)
        elif child.proc.poll() is None:
            os.kill(child.proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
