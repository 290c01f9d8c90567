"""Redis commands packed by hand (RESP), and a MULTI … EXEC sent in one write: the project's only encoder.

redis-py packs arguments several times slower than :func:`pack`, which
matters on two hot paths: the ingress's one ``XADD`` per webhook
(shared/webhook_queue.py) and the resync's page transaction (~5 arguments
per follower, 1,000 followers a page). Everything else uses redis-py.

- :func:`pack`: one command as bytes; :func:`round_trip` sends one packed
  command on a connection the caller owns and reads its reply.
- :class:`Transaction`: commands queued with :meth:`~Transaction.add`, sent as
  MULTI … EXEC in one write and read back in one round trip; optionally fenced
  by a WATCH (:meth:`~Transaction.watch`), so that EXEC writes nothing if a
  watched key changed after the caller read it.
- :class:`Queued`: a stand-in client that lets code written against a client
  (``shared.scripts.script(r, name)(keys=…, args=…)``, e.g.
  :func:`shared.state.apply`) queue its script inside a Transaction instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis


try:  # hiredis (a dependency) packs in C, twice as fast for a resync page's ~3,000 arguments
    from hiredis import pack_command as _c_pack
except ImportError:  # pragma: no cover
    _c_pack = None


def pack(*args: Any) -> bytes:
    """One command in RESP: an array of bulk strings (bytes as they are; str UTF-8; anything else ``str()``)."""
    if _c_pack is not None:
        try:
            return _c_pack(args)
        except TypeError:  # an argument that is not bytes, str, int or float (e.g. a bool): str() below
            pass
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else (a.encode() if isinstance(a, str) else str(a).encode())
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def round_trip(conn: redis.connection.AbstractConnection, packed: bytes) -> Any:
    """Send one packed command on ``conn`` (the caller's) and read its reply."""
    conn.send_packed_command([packed], check_health=False)  # redis-py disconnects on any error
    return conn.read_response()


class Transaction:
    """One MULTI … EXEC sent as a single write and read back in one round trip.

    Results are EXEC's list, with a ResponseError object in place of any
    command that failed while the others were applied. A command that Redis
    refuses when queued (wrong arity, unknown command) aborts the whole EXEC:
    that error is raised.

    Optionally fenced: :meth:`watch` WATCHes keys on a connection that is kept
    for :meth:`execute`, whose EXEC then writes nothing if any of them was
    written, deleted or expired in between. Call :meth:`close` when done.
    """

    def __init__(self) -> None:
        self.cmds: list[tuple[Any, ...] | bytes] = []
        self._held: tuple[Any, Any] | None = None  # (pool, connection) from watch() to execute()/close()

    def add(self, *args: Any) -> None:
        self.cmds.append(args)

    def add_packed(self, packed: bytes) -> None:
        """Queue one command already packed with :func:`pack` (e.g. on another thread, ahead of time)."""
        self.cmds.append(packed)

    def watch(self, r: redis.Redis, keys: list[str], *reads: tuple[Any, ...]) -> list[Any]:
        """WATCH ``keys``, then run ``reads``: one round trip. Returns the replies to ``reads``.

        What the replies show holds until EXEC for the watched keys: if one changes, EXEC does nothing.
        """
        if self._held is not None:
            raise RuntimeError("already watching")
        pool = r.connection_pool
        conn = pool.get_connection()
        self._held = (pool, conn)
        try:
            conn.send_packed_command([b"".join(pack(*c) for c in [("WATCH", *keys), *reads])])
            conn.read_response()  # +OK
            return [conn.read_response() for _ in reads]
        except BaseException:
            self.close(broken=True)
            raise

    def close(self, *, broken: bool = False) -> None:
        """Give back the connection of :meth:`watch` if :meth:`execute` did not (UNWATCH first)."""
        if self._held is None:
            return
        (pool, conn), self._held = self._held, None
        try:
            if broken:
                conn.disconnect()
            else:
                round_trip(conn, pack("UNWATCH"))
        except Exception:
            conn.disconnect()  # a connection in an unknown state is not given to anyone else
        finally:
            pool.release(conn)

    def execute(self, r: redis.Redis) -> list[Any] | None:
        """Run the transaction. None when a watched key changed (nothing was written)."""
        payload = b"".join([pack("MULTI"), *(c if isinstance(c, bytes) else pack(*c) for c in self.cmds),
                            pack("EXEC")])
        if self._held is not None:
            (pool, conn), self._held = self._held, None
        else:
            pool = r.connection_pool
            conn = pool.get_connection()
        queue_errors: list[Exception] = []
        try:
            conn.send_packed_command([payload])
            conn.read_response()  # +OK
            for _ in self.cmds:
                try:
                    conn.read_response()  # +QUEUED
                except redis.ResponseError as e:  # rejected at queue time: EXEC aborts
                    queue_errors.append(e)
            try:
                res = conn.read_response()
            except redis.ResponseError:
                if queue_errors:
                    raise queue_errors[0] from None
                raise
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)
        return None if res is None else list(res)


class Queued:
    """A stand-in client whose scripts are queued in a :class:`Transaction` instead of run.

    Code that calls ``register_script(source)(keys=…, args=…)`` and reads the
    result at once (as :func:`shared.scripts.script` callers do) gets zeros
    (``zeros`` of them); the real results come back from ``EXEC``. Each call is
    queued as ``EVAL`` with the source, not ``EVALSHA``: a flushed script
    cache cannot fail one command of the transaction while the others commit.
    """

    def __init__(self, tx: Transaction, *, zeros: int = 5):
        self._tx = tx
        self._zeros = zeros

    def register_script(self, source: str) -> Callable[..., list[int]]:
        def call(keys: list[str], args: list[Any]) -> list[int]:
            self._tx.add("EVAL", source, len(keys), *keys, *args)
            return [0] * self._zeros
        return call
