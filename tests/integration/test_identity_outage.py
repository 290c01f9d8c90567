"""Queued identify requests survive a Braze outage and a killed worker: real worker processes
(their own consumer names and leases), the Braze sandbox answering 503, SIGKILL and a restart."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests

from shared import identity
from tests.integration.conftest import API_KEY
from tests.support.procs import ROOT, wait_until

pytestmark = pytest.mark.integration

N = 12


def uid(n: int) -> str:
    return f"U{n:032x}"


def anonymous_profiles(stack, users) -> None:
    """The LINE users' anonymous profiles (alias line_id), as their follows created them."""
    objs = [{"user_alias": {"alias_name": u, "alias_label": "line_id"}, "_update_existing_only": False}
            for u in users]
    resp = requests.post(f"{stack.braze.url}/users/track", headers={"Authorization": f"Bearer {API_KEY}"},
                         json={"attributes": objs}, timeout=5)
    assert resp.status_code == 201, resp.text


def identify_answers(stack, status: int) -> list[dict]:
    return [e for e in stack.braze.requests() if e["path"] == "/users/identify" and e["status"] == status]


def holders(stack) -> set[str]:
    """Worker names whose identity consumer holds pending items."""
    rows = stack.r.xpending_range(stack.keys.identity, "workers", min="-", max="+", count=100)
    return {p["consumer"].decode().rpartition("/")[0] for p in rows}


def test_identify_requests_survive_a_braze_outage_and_a_killed_worker(stack):
    users = {f"crm-out-{i}": uid(500 + i) for i in range(N)}
    anonymous_profiles(stack, users.values())
    stack.braze.set_faults(status=503, count=-1, endpoint="/users/identify")
    workers = [stack.start_worker(concurrency=2), stack.start_worker(concurrency=2)]
    items = list(users.items())
    ext, u = items[0]  # one queued as operators do, the rest as the admin endpoint and account linking do
    res = subprocess.run([sys.executable, "-m", "linesync.cli", "identify", ext, u], cwd=ROOT, env=stack.env(),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for ext, u in items[1:]:
        identity.enqueue(stack.r, stack.keys, identity.IDENTIFY, ext, u)
    # Braze answers 503: the items stay with the workers that read them, waiting for the breaker.
    wait_until(lambda: identify_answers(stack, 503) and
               stack.r.xpending(stack.keys.identity, "workers")["pending"] == N,
               timeout=20, what="items read and refused", on_fail=stack.logs)
    held = holders(stack)
    pids = {h.split(":")[-2] for h in held if h.count(":") >= 2}
    victim = next((w for w in workers if str(w.proc.pid) in pids), workers[0])
    victim.kill()                      # SIGKILL while it holds items
    stack.start_worker(concurrency=2)  # its replacement
    # The outage goes on past the claim idle time (2 s here) and a recovery interval (5 s):
    # items wait in live workers, the dead one's are taken over.
    time.sleep(6)
    assert stack.r.xlen(stack.keys.identity) == N and stack.r.xlen(stack.keys.dlq) == 0
    stack.braze.clear_faults()
    wait_until(lambda: all((stack.braze.profile(alias_name=u) or {}).get("external_id") == e
                           for e, u in users.items()),
               timeout=45, what="every identify to reach Braze", on_fail=stack.logs)
    # Each item reached Braze once: no request accepted twice by two processes.
    assert sum(e["n_objects"] for e in identify_answers(stack, 201)) == N
    wait_until(lambda: stack.r.xlen(stack.keys.identity) == 0, timeout=10, on_fail=stack.logs)
    assert stack.r.xlen(stack.keys.dlq) == 0


def test_a_poisoned_identify_item_is_split_out_and_dead_lettered_while_the_rest_reach_braze(stack):
    users = {f"crm-poison-{i}": uid(700 + i) for i in range(8)}
    anonymous_profiles(stack, users.values())
    bad_ext, bad_user = list(users.items())[5]
    stack.braze.set_faults(poison_ids=[bad_user], poison_mode="400")
    for ext, u in users.items():   # queued before a worker reads: one request of 8
        identity.enqueue(stack.r, stack.keys, identity.IDENTIFY, ext, u)
    stack.start_worker(concurrency=2)
    good = {e: u for e, u in users.items() if e != bad_ext}
    wait_until(lambda: all((stack.braze.profile(alias_name=u) or {}).get("external_id") == e
                           for e, u in good.items()) and stack.r.xlen(stack.keys.dlq) == 1,
               timeout=30, what="the good items delivered, the bad one dead-lettered", on_fail=stack.logs)
    # halved: the whole request, its halves, quarters, then the bad item alone (not 1 + 8 one by one)
    assert [e["status"] for e in stack.braze.requests() if e["path"] == "/users/identify"] == \
        [400, 201, 400, 400, 201, 400, 201]
    assert (stack.braze.profile(alias_name=bad_user) or {}).get("external_id") is None
    [(_, letter)] = stack.r.xrange(stack.keys.dlq)
    assert letter[b"kind"] == b"identify" and bad_ext.encode() in letter[b"payload"]
    wait_until(lambda: stack.r.xlen(stack.keys.identity) == 0, timeout=10, on_fail=stack.logs)
