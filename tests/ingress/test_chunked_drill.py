"""The chunked-body drill, over real sockets against the real `linesync ingress`.

8 clients each send an unsigned request whose body comes in 60,000 one-byte
chunks (~360 kB on the wire), all at once, while LINE keeps posting signed
webhooks. Before, the worker framed each of them whole and gunicorn's chunked
reader then copied what was left of the body once per chunk: seconds of CPU
per request, no answer within 10 s, and the signed webhooks slowed down. Now
a chunked body is refused with 411 as soon as its headers are in, the signed
webhooks get 200 and are stored. The body limit is the default (1 MiB): these
bodies are under it, so nothing else refuses them.
"""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from linesync.commands.send_test_webhook import follow_event, webhook_body
from shared.signature import sign
from shared.webhook_queue import BODY_FIELD
from tests.conftest import TEST_SECRET
from tests.ingress.servers import Responses, closed_within, get, running_ingress

pytestmark = pytest.mark.integration

ATTACKERS = 8
CHUNKS = 60_000
WEBHOOKS = 24
# Bounds on every wait (a test that hangs tells nothing): generous, none of them is asserted on.
ANSWER_WAIT = 15.0


@pytest.fixture(scope="module")
def ingress(redis_server, tmp_path_factory):
    with running_ingress(redis_server.url, tmp_path_factory.mktemp("ingress")) as ing:
        yield ing


def _chunked_request() -> bytes:
    return (b"POST /line/events HTTP/1.1\r\nHost: linesync\r\nContent-Type: application/json\r\n"
            b"X-Line-Signature: nope\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1\r\n \r\n" * CHUNKS + b"0\r\n\r\n")


def _attack(port: int, request: bytes) -> bytes:
    """Send the whole chunked request (as an attacker would, not waiting); what the server answered."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)

    def send() -> None:
        try:
            s.sendall(request)
        except OSError:
            pass  # refused and closed before all of it was sent: expected

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        return closed_within(s, ANSWER_WAIT)
    except (TimeoutError, OSError):
        return b""
    finally:
        s.close()
        sender.join(5)


def _signed(port: int, body: bytes) -> int:
    request = (b"POST /line/events HTTP/1.1\r\nHost: linesync\r\nContent-Type: application/json\r\n"
               b"X-Line-Signature: " + sign(TEST_SECRET, body).encode() + b"\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(request)
            return Responses(s).next(timeout=ANSWER_WAIT)[0]
    except OSError:
        return 0


def test_chunked_bodies_are_refused_at_once_while_signed_webhooks_are_stored(ingress, r, keys):
    port = ingress.port
    request = _chunked_request()
    bodies = [webhook_body([follow_event("U" + f"{i:032x}", 1_700_000_000_000 + i)]) for i in range(WEBHOOKS)]
    with ThreadPoolExecutor(ATTACKERS + 4) as pool:
        attacks = [pool.submit(_attack, port, request) for _ in range(ATTACKERS)]
        webhooks = [pool.submit(_signed, port, body) for body in bodies]
        answers = [a.result() for a in attacks]
        statuses = [w.result() for w in webhooks]

    assert statuses == [200] * WEBHOOKS
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 411 "), answer[:80]
    stored = [f[BODY_FIELD] for _, f in r.xrange(keys.webhooks)]
    assert sorted(stored) == sorted(bodies)  # every 200 stored, nothing else
    assert get(port, "/readyz")[0] == 200
    _, metrics = get(ingress.admin_port, "/metrics")
    assert f'linesync_ingress_connections_cut_total{{reason="length_required"}} {float(ATTACKERS)}'.encode() in metrics
