"""Linear hashing over many small Redis hashes: the Python side of shared/lua/lib/lhash.lua.

One big hash costs a hashtable entry per field (~70 B or more); many small
hashes kept as listpacks cost ~16 B per field/value pair plus the bytes
themselves. A family of buckets ``<prefix>:<b>`` (b = 0 .. N-1) therefore holds
the entries, about :data:`LOAD` each. It grows one bucket at a time, inside the
script that adds entries: when it holds more than ``LOAD * N`` entries, bucket
``s = N - 2**L`` (``2**L <= N < 2**(L+1)``) is split and the entries whose hash
has bit L set move to the new bucket N. No stop-the-world rehash, and a walk
over buckets 0..N-1 in order meets every entry at least once (entries only
move to the new last bucket).

A bucket not yet split at its level holds up to twice the average: 2 x 48 =
96 entries on average, far under Redis's ``hash-max-listpack-entries`` (512
by default, Redis 7; 512 for ``hash-max-ziplist-entries`` before), so no
``CONFIG`` is needed. A bucket that grows past the limit anyway (chance) just
becomes a hashtable: it costs more memory, nothing else.

A field's hash is its last 4 bytes: the fields are LINE user ids or event ids,
random (or sequential) in their last digits.
"""

from __future__ import annotations

# Entries per bucket on average (lib/lhash.lua LH_LOAD).
LOAD = 48


def field_hash(field: bytes) -> int:
    return int.from_bytes(field[-4:], "big")


def _round(n: int) -> int:
    """2**L, the largest power of two not above ``n`` (at least 1)."""
    return 1 << (max(1, n).bit_length() - 1)


def _bucket(h: int, n: int, p: int) -> int:
    b = h % (2 * p)
    return b if b < n else h % p


def bucket(h: int, n: int) -> int:
    """The bucket of hash ``h`` among ``n`` buckets."""
    return _bucket(h, n, _round(n))


def buckets_of(fields: list[bytes], n: int) -> list[int]:
    """The bucket of each of ``fields`` among ``n`` buckets (:func:`bucket` of :func:`field_hash`, for many)."""
    p = _round(n)
    return [_bucket(field_hash(f), n, p) for f in fields]
