"""The Supervisor with tiny Python children: prefixes, failure propagation, stopping."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from linesync.supervisor import ProcessSpec, Supervisor, describe_exit

PY = sys.executable


def py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def sleeper(seconds: float = 60) -> list[str]:
    return py(f"import time; time.sleep({seconds})")


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def sup(out):
    s = Supervisor(out=out, stop_timeout=5, poll_interval=0.02, color=False)
    yield s
    s.stop()


def test_output_lines_carry_the_process_name(sup, out):
    sup.start(ProcessSpec("alpha", py("print('hello'); print('world'); import time; time.sleep(60)")))
    sup.start(ProcessSpec("b", py("import sys; sys.stderr.write('oops\\n'); import time; time.sleep(60)")))
    wait_for(lambda: out.getvalue().count("\n") >= 3)
    sup.stop()
    lines = out.getvalue().splitlines()
    assert "alpha    | hello" in lines
    assert "alpha    | world" in lines
    assert "b        | oops" in lines  # stderr too


def test_a_child_that_dies_stops_the_rest_and_fails(sup, out):
    long = sup.start(ProcessSpec("long", sleeper()))
    sup.start(ProcessSpec("crashy", py("import time, sys; time.sleep(0.2); sys.exit(3)")))
    started = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - started < 5
    assert long.proc.returncode is not None
    assert "crashy exited unexpectedly (exit code 3); stopping everything" in out.getvalue()


def test_request_stop_stops_everyone_and_succeeds(sup):
    children = [sup.start(ProcessSpec(n, sleeper())) for n in ("a", "b", "c")]
    sup.request_stop()
    assert sup.run() == 0
    assert all(c.proc.returncode == -signal.SIGTERM for c in children)


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(out):
    sup = Supervisor(out=out, stop_timeout=0.5, poll_interval=0.02, color=False)
    stubborn = sup.start(ProcessSpec("stubborn", py("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('ready', flush=True)
        time.sleep(60)
    """)))
    wait_for(lambda: "ready" in out.getvalue())
    started = time.monotonic()
    sup.stop()
    assert 0.4 < time.monotonic() - started < 5
    assert stubborn.proc.returncode == -signal.SIGKILL
    assert "stubborn did not stop in time; killing it" in out.getvalue()


def test_grandchildren_do_not_outlive_a_stop(sup, tmp_path):
    pidfile = tmp_path / "grandchild"
    sup.start(ProcessSpec("parent", py(f"""
        import signal, subprocess, sys, time
        g = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        open({str(pidfile)!r}, "w").write(str(g.pid))
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))  # leaves g behind
        time.sleep(60)
    """)))
    wait_for(lambda: pidfile.exists() and pidfile.read_text())
    grandchild = int(pidfile.read_text())
    sup.stop()
    wait_for(lambda: not alive(grandchild), timeout=5)


def test_higher_tiers_stop_first(sup, tmp_path):
    log = tmp_path / "log"
    on_term = """
        import signal, sys, time
        def stop(*a):
            time.sleep(0.2)
            open({log!r}, "a").write("{name}\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("ready", flush=True)
        time.sleep(60)
    """
    for name, tier in (("redis", 0), ("sandbox", 1), ("app", 2)):
        sup.start(ProcessSpec(name, py(on_term.format(log=str(log), name=name)), tier=tier))
    wait_for(lambda: sup.out.getvalue().count("ready") == 3)
    sup.stop()
    assert log.read_text().split() == ["app", "sandbox", "redis"]


def test_sigterm_to_the_supervising_process_stops_all(tmp_path):
    script = tmp_path / "supervise.py"
    script.write_text(textwrap.dedent("""
        import sys
        from linesync.supervisor import ProcessSpec, Supervisor
        sup = Supervisor(stop_timeout=5, poll_interval=0.02, color=False)
        sup.install_signal_handlers()
        for name in ("one", "two"):
            c = sup.start(ProcessSpec(name, [sys.executable, "-c", "import time; time.sleep(60)"]))
            print("pid", c.proc.pid, flush=True)
        sys.exit(sup.run())
    """))
    proc = subprocess.Popen([PY, str(script)], stdout=subprocess.PIPE, text=True)
    pids = [int(proc.stdout.readline().split()[1]) for _ in range(2)]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    assert "stopping" in proc.stdout.read()
    for pid in pids:
        wait_for(lambda pid=pid: not alive(pid), timeout=5)


def test_wait_until_notices_a_dead_child(sup):
    from linesync.supervisor import ChildExited

    sup.start(ProcessSpec("quick", py("pass")))
    with pytest.raises(ChildExited, match="quick exited unexpectedly"):
        sup.wait_until(lambda: False, timeout=5)


def test_describe_exit():
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(None) == "still running"
