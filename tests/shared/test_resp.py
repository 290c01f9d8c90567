"""shared/resp.py against a real Redis: packing, one-round-trip transactions, the WATCH fence, queued scripts."""

from __future__ import annotations

import pytest
import redis

from shared import resp
from shared.scripts import script


def test_pack_is_what_redis_py_sends():
    conn = redis.connection.Connection()
    for args in [("SET", "k", "v"), ("XADD", b"s", b"*", b"body", b"\x00\xff\r\n"), ("EVAL", "return 1", 0, 7, "é")]:
        assert resp.pack(*args) == b"".join(conn.pack_command(*args))


def test_pack_in_c_and_in_python_agree(monkeypatch):
    args = ("EVAL", "return 1", 2, -7, 0.5, 2**70, b"\x00\xff\r\n", "é", True)
    packed = resp.pack(*args)  # True is no hiredis type: Python packs the whole command
    assert packed.endswith(b"$4\r\nTrue\r\n")
    assert resp.pack(*args[:-1]) == packed[:packed.rindex(b"$4")].replace(b"*9", b"*8", 1)
    monkeypatch.setattr(resp, "_c_pack", None)
    assert resp.pack(*args) == packed and resp.pack(*args[:-1]) == packed[:packed.rindex(b"$4")].replace(b"*9", b"*8", 1)


def test_round_trip_on_a_caller_owned_connection(r):
    conn = r.connection_pool.get_connection()
    try:
        assert resp.round_trip(conn, resp.pack("SET", "k", b"v\r\n")) in (True, b"OK")
        assert resp.round_trip(conn, resp.pack("GET", "k")) == b"v\r\n"
    finally:
        r.connection_pool.release(conn)


def test_a_transaction_is_one_write_and_returns_exec_s_list(r, monkeypatch):
    tx = resp.Transaction()
    tx.add("SET", "a", 1)
    tx.add("INCR", "a")
    tx.add("HSET", "a", "f", "v")  # WRONGTYPE at EXEC: this one fails, the others stay applied
    writes = []
    real = redis.connection.Connection.send_packed_command
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command",
                        lambda self, c, check_health=True: (writes.append(1), real(self, c, check_health))[1])
    res = tx.execute(r)
    assert len(writes) == 1
    assert res[1] == 2 and isinstance(res[2], redis.ResponseError)
    assert r.get("a") == b"2"


def test_a_command_refused_when_queued_aborts_everything(r):
    tx = resp.Transaction()
    tx.add("SET", "a", 1)
    tx.add("NOSUCHCOMMAND")
    with pytest.raises(redis.ResponseError):
        tx.execute(r)
    assert r.get("a") is None
    assert r.ping()  # the pool's connections are usable afterwards


def test_watch_fences_exec(r):
    r.set("w", "1")
    tx = resp.Transaction()
    assert tx.watch(r, ["w"], ("GET", "w")) == [b"1"]
    r.set("w", "2")  # someone else writes the watched key
    tx.add("SET", "out", "x")
    assert tx.execute(r) is None and r.get("out") is None

    tx = resp.Transaction()
    tx.watch(r, ["w"], ("GET", "w"))
    tx.add("SET", "out", "y")
    assert tx.execute(r) is not None
    assert r.get("out") == b"y"


def test_close_unwatches_and_gives_the_connection_back(r):
    tx = resp.Transaction()
    tx.watch(r, ["w"], ("GET", "w"))
    tx.close()
    tx.close()  # idempotent
    assert len(r.connection_pool._in_use_connections) == 0


def test_queued_scripts_run_with_the_transaction(r):
    tx = resp.Transaction()
    q = resp.Queued(tx, zeros=2)
    assert script(q, "lease")(keys=["lease-key"], args=["take", "tok", 1000]) == [0, 0]
    assert r.get("lease-key") is None  # only queued
    res = tx.execute(r)
    assert len(res) == 1 and r.get("lease-key") == b"tok"
