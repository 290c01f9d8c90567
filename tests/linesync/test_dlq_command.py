"""`linesync dlq replay` against a real Redis: what it did, per kind, never silently."""

import subprocess
import sys

from shared import dlq
from tests.support.procs import ROOT, base_env

U1 = "U" + "a" * 32


def run_cli(redis_url, *args):
    return subprocess.run([sys.executable, "-m", "linesync.cli", "dlq", *args], cwd=ROOT, text=True,
                          capture_output=True, env=base_env(REDIS_URL=redis_url), timeout=60)


def test_replay_says_what_it_did_per_kind_and_what_it_kept(r, keys, redis_url):
    r.xadd(keys.dlq, dlq.entry("track", "x", {"user": U1, "object": {}}))
    r.xadd(keys.dlq, dlq.entry("identify", "x", {"kind": "identify", "external_id": "crm-1", "line_user_id": U1}))
    r.xadd(keys.dlq, dlq.entry("merge", "x", {"kind": "merge", "external_id": "crm-2", "line_user_id": U1}))
    r.xadd(keys.dlq, dlq.entry("identify", "x", {"kind": "bogus", "external_id": "crm-3", "line_user_id": U1}))
    res = run_cli(redis_url, "replay")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "replayed 3 of 4 dead letters" in out
    assert "track" in out and "1 profiles queued" in out
    assert "/users/identify requests queued again" in out and "/users/merge requests queued again" in out
    assert "kept 1 dead letters that cannot be replayed" in out and "unknown request kind 'bogus'" in out
    assert r.xlen(keys.dlq) == 1 and r.xlen(keys.identity) == 2


def test_replay_of_one_kind_and_of_nothing(r, keys, redis_url):
    r.xadd(keys.dlq, dlq.entry("merge", "x", {"kind": "merge", "external_id": "crm-2", "line_user_id": U1}))
    r.xadd(keys.dlq, dlq.entry("track", "x", {"user": U1, "object": {}}))
    res = run_cli(redis_url, "replay", "--kind", "merge")
    assert res.returncode == 0, res.stderr
    assert "replayed 1 of 1 dead letters" in res.stdout and "merge" in res.stdout
    assert r.xlen(keys.dlq) == 1
    r.delete(keys.dlq)
    assert "no dead letters to replay" in run_cli(redis_url, "replay").stdout
