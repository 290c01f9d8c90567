"""Public bind vs admin bind (ingress/surface.py): in-process, then over real HTTP."""

from __future__ import annotations

import socket

import pytest

from ingress.surface import ADMIN, ENVIRON_KEY, PUBLIC, AdminBind, SurfaceGate, surface_of
from tests.ingress.servers import get, running_ingress

ADMIN_PATHS = ["/metrics", "/v1/links", "/status", "/nope"]


class FakeSocket:
    def __init__(self, local):
        self.local = local

    def getsockname(self):
        return self.local


def test_admin_bind_matches_the_local_address_of_the_connection():
    loopback = AdminBind.parse("127.0.0.1:9080")
    assert loopback.matches(("127.0.0.1", 9080))
    assert loopback.matches(("::ffff:127.0.0.1", 9080, 0, 0))  # a dual-stack listener's spelling
    assert not loopback.matches(("127.0.0.1", 8080))
    assert not loopback.matches(("10.0.0.4", 9080))  # same port on another address: the public bind
    anywhere = AdminBind.parse("0.0.0.0:9080")
    assert anywhere.matches(("10.0.0.4", 9080)) and not anywhere.matches(("10.0.0.4", 8080))
    assert AdminBind.parse("[::]:9080").matches(("::1", 9080, 0, 0))
    assert AdminBind.parse("[::1]:9080").matches(("::1", 9080, 0, 0))
    assert AdminBind.parse("localhost:9080").matches(("127.0.0.1", 9080))
    unix = AdminBind.parse("unix:/run/linesync-admin.sock")
    assert unix.matches("/run/linesync-admin.sock") and not unix.matches("/run/other.sock")
    assert not unix.matches(("127.0.0.1", 9080))


def test_an_unresolvable_admin_host_is_never_admin():
    bind = AdminBind.parse("no-such-host.invalid:9080")
    assert not bind.matches(("127.0.0.1", 9080))


@pytest.mark.parametrize("bad", ["9080", "host:", "host:port"])
def test_malformed_admin_binds_are_refused(bad):
    with pytest.raises(ValueError):
        AdminBind.parse(bad)


def test_the_surface_comes_from_the_socket_never_from_headers():
    admin = AdminBind.parse("127.0.0.1:9080")
    spoofed = {"HTTP_HOST": "127.0.0.1:9080", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "9080",
               "HTTP_X_FORWARDED_PORT": "9080"}
    assert surface_of({**spoofed, "gunicorn.socket": FakeSocket(("127.0.0.1", 8080))}, admin) == PUBLIC
    assert surface_of({**spoofed}, admin) == PUBLIC  # no socket (another server): public
    assert surface_of({"gunicorn.socket": FakeSocket(("127.0.0.1", 9080))}, admin) == ADMIN
    assert surface_of({ENVIRON_KEY: ADMIN}, admin) == ADMIN  # an in-process caller (the test client)


def test_the_gate_does_not_look_at_the_socket_for_public_paths():
    calls = []

    class CountingSocket(FakeSocket):
        def getsockname(self):
            calls.append(1)
            return super().getsockname()

    gate = SurfaceGate(AdminBind.parse("127.0.0.1:9080"), lambda environ, start: [b"app"])
    environ = {"PATH_INFO": "/line/events", "gunicorn.socket": CountingSocket(("127.0.0.1", 8080))}
    assert gate(environ, lambda *a: None) == [b"app"] and calls == []
    environ["PATH_INFO"] = "/metrics"
    statuses = []
    assert gate(environ, lambda status, headers: statuses.append(status)) == [b'{"error":"not found"}']
    assert statuses == ["404 NOT FOUND"] and calls == [1]


def test_public_surface_serves_only_the_webhook_and_health(public_client, client, post, follow_body):
    for path in ADMIN_PATHS:
        resp = public_client.get(path)
        assert resp.status_code == 404 and resp.json == {"error": "not found"}, path
    assert public_client.post("/v1/links", json=[], headers={"Authorization": "Bearer x"}).status_code == 404
    assert public_client.get("/healthz").status_code == 200
    assert public_client.get("/readyz").status_code == 200
    assert public_client.post("/line/events", data=b"{}").status_code == 401  # the webhook itself
    # The admin surface has every route.
    assert client.get("/metrics").status_code == 200
    assert client.get("/healthz").status_code == 200


@pytest.mark.integration
def test_over_http_the_public_port_404s_the_admin_routes(redis_server, tmp_path, r):
    with running_ingress(redis_server.url, tmp_path, workers=1, LINESYNC_ADMIN_TOKEN="admin-secret") as ing:
        auth = {"Authorization": "Bearer admin-secret"}
        for path in ["/metrics", "/v1/links/x", "/status"]:
            assert get(ing.port, path, auth)[0] == 404, path
            # A Host header naming the admin port changes nothing.
            assert get(ing.port, path, {**auth, "Host": f"127.0.0.1:{ing.admin_port}"})[0] == 404, path
        status, text = get(ing.admin_port, "/metrics")
        assert status == 200 and b"linesync_ingress_requests_total" in text
        assert get(ing.admin_port, "/v1/links/nobody", auth)[0] == 405  # routed (DELETE only), not hidden
        assert get(ing.port, "/readyz")[0] == 200 and get(ing.admin_port, "/readyz")[0] == 200


def test_the_cli_refuses_the_same_address_for_both_binds(tmp_path):
    from click.testing import CliRunner

    from linesync.commands.ingress import ingress

    result = CliRunner().invoke(ingress, ["--bind", "127.0.0.1:8080", "--admin-bind", "127.0.0.1:8080"])
    assert result.exit_code != 0 and "must differ from --bind" in result.output
    result = CliRunner().invoke(ingress, ["--admin-bind", "9080"])
    assert result.exit_code != 0 and "HOST:PORT" in result.output


def test_localhost_resolution_covers_both_families():
    infos = {info[4][0] for info in socket.getaddrinfo("localhost", 1, type=socket.SOCK_STREAM)}
    bind = AdminBind.parse("localhost:9080")
    for addr in infos:
        assert bind.matches((addr, 9080, 0, 0) if ":" in addr else (addr, 9080))
