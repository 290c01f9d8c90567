"""SIGHUP to `linesync ingress` re-reads the channels file without dropping a request (real gunicorn)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import urllib.error
import urllib.request

import pytest

from shared.embedded_redis import free_port
from shared.signature import sign
from tests.support.procs import Proc, base_env, wait_until

CHANNEL = """
[channels.{name}]
line_channel_secret = "secret-{name}"
line_channel_access_token = "t"
braze_rest_endpoint = "https://rest.iad-01.braze.com"
braze_api_key = "k"
braze_subscription_group_id = "sg-{name}"
"""
BODY = b'{"destination":"Ubot","events":[{"type":"follow","timestamp":1,"source":{"type":"user","userId":"U1"}}]}'


def post(port: int, name: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/line/events/{name}", data=BODY, method="POST",
                                 headers={"X-Line-Signature": sign(f"secret-{name}", BODY)})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@pytest.mark.integration
def test_sighup_adds_a_channel_and_drops_no_request(tmp_path, redis_url, r):
    path = tmp_path / "channels.toml"
    path.write_text(CHANNEL.format(name="jp"))
    port = free_port()
    env = base_env(REDIS_URL=redis_url, LINESYNC_CHANNELS_FILE=str(path), LINESYNC_ADMIN_BIND=f"127.0.0.1:{free_port()}")
    ingress = Proc("ingress", [sys.executable, "-m", "linesync.cli", "ingress", "--bind", f"127.0.0.1:{port}",
                               "--workers", "2"], env)
    try:
        wait_until(lambda: post(port, "jp") == 200, timeout=30, what="the ingress", on_fail=ingress.output)
        assert post(port, "tw") == 404
        answers: list[int] = []
        done = threading.Event()

        def keep_posting():
            while not done.is_set():
                answers.append(post(port, "jp"))

        t = threading.Thread(target=keep_posting)
        t.start()
        try:
            path.write_text(CHANNEL.format(name="jp") + CHANNEL.format(name="tw"))
            os.kill(ingress.proc.pid, signal.SIGHUP)
            wait_until(lambda: post(port, "tw") == 200, timeout=30, what="channel tw after SIGHUP",
                       on_fail=ingress.output)
            path.write_text("[channels.jp]\nnot toml")  # a broken file: logged, channels kept
            os.kill(ingress.proc.pid, signal.SIGHUP)
            ingress.wait_for_line("keeping the channels in use", timeout=30)
        finally:
            done.set()
            t.join()
        assert answers and set(answers) == {200}, sorted(set(answers))
        assert post(port, "tw") == 200
    finally:
        ingress.kill()
