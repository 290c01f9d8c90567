"""`linesync status` against a real Redis: the identity queue is visible (nothing lost silently)."""

import json
import subprocess
import sys

from shared import dlq, identity
from tests.support.procs import ROOT, base_env

U1 = "U" + "a" * 32


def run_cli(redis_url, *args):
    return subprocess.run([sys.executable, "-m", "linesync.cli", "status", *args], cwd=ROOT, text=True,
                          capture_output=True, env=base_env(REDIS_URL=redis_url), timeout=60)


def test_status_shows_the_identity_queue(r, keys, redis_url):
    for i in range(3):
        identity.enqueue(r, keys, identity.IDENTIFY, f"crm-{i}", U1)
    identity.enqueue(r, keys, identity.MERGE, "crm-m", U1)
    r.xgroup_create(keys.identity, "workers", id="0")
    got = r.xreadgroup("workers", "h:1:a/identity", {keys.identity: ">"}, count=2)[0][1]
    identity.record_retries(r, keys, {got[0][0]: identity.RetryState(1, 10**13)})
    kind, payload = dlq.identity_letter(identity.Request("merge", "crm-x", U1))
    r.xadd(keys.dlq, dlq.entry(kind, "HTTP 400", payload))
    res = run_cli(redis_url)
    assert res.returncode == 0, res.stderr
    assert "Identity queue" in res.stdout
    assert "queued 4, held by workers 2, waiting to retry 1; dead letters: identify 0, merge 1" in res.stdout
    res = run_cli(redis_url, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["identity"] == {"queued": 4, "held": 2, "retrying": 1,
                                                  "dead_letters": {"identify": 0, "merge": 1}}
