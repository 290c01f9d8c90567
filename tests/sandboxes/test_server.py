"""The HTTP plumbing: keep-alive, concurrency, free ports, clean stop."""

from __future__ import annotations

import http.client
import json
import threading

import pytest
import requests

from sandboxes.server import Request, SandboxServer, json_response


class Echo:
    def handle(self, request: Request):
        return json_response(200, {"method": request.method, "path": request.path, "query": request.query,
                                   "len": len(request.body)})


def test_keep_alive_reuses_one_connection():
    server = SandboxServer(Echo()).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        for i in range(20):
            conn.request("POST", f"/x?i={i}", body=b"abc")
            r = conn.getresponse()
            assert json.loads(r.read()) == {"method": "POST", "path": "/x", "query": {"i": str(i)}, "len": 3}
            assert r.getheader("Connection") != "close"
        conn.close()
    finally:
        server.stop()


def test_concurrent_clients():
    server = SandboxServer(Echo()).start()
    errors = []

    def client():
        with requests.Session() as s:
            for _ in range(30):
                if s.get(f"{server.url}/ping").status_code != 200:
                    errors.append(1)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.stop()
    assert errors == []


def test_two_servers_get_different_ports_and_stop_closes_keepalive_connections():
    a, b = SandboxServer(Echo()).start(), SandboxServer(Echo()).start()
    assert a.port != b.port and a.port > 0
    s = requests.Session()
    assert s.get(f"{a.url}/").status_code == 200
    a.stop()
    b.stop()
    try:
        s.get(f"{a.url}/", timeout=2)
        raise AssertionError("server still answering")
    except requests.ConnectionError:
        pass


def test_restart_on_the_same_port_keeps_state():
    from sandboxes import BrazeSandbox

    box = BrazeSandbox().start()
    url = box.url
    box.configure(batch_size=5)
    box.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/_sandbox/health", timeout=2)
    box.start()
    try:
        assert box.url == url
        assert requests.get(f"{url}/_sandbox/config").json()["batch_size"] == 5
    finally:
        box.stop()


def test_chunked_request_body_and_connection_close():
    server = SandboxServer(Echo()).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        conn.request("POST", "/c", body=iter([b"ab", b"cde"]), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        assert json.loads(conn.getresponse().read())["len"] == 5
        conn.request("GET", "/", headers={"Connection": "close"})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Connection") == "close"
        conn.close()
    finally:
        server.stop()
