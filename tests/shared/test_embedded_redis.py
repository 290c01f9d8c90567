"""The private redis-server used by `linesync up` and the tests."""

from __future__ import annotations

import os

import redis

from shared.embedded_redis import EmbeddedRedis, find_redis_server, free_port


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
