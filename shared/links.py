"""The identity index: which customer external_ids are linked to which LINE user.

A LINE user may have several linked external_ids; an external_id has one LINE
user. Linking queues the LINE user in the outbox, so the linked profile gets
``native_line_id`` and the current subscription state in the same batches as
everything else, and from then on every transition of that user updates every
linked profile (shared/payload.py objects_for).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import redis

from shared.keys import Keys
from shared.scripts import script

# LINE user ids are "U" + 32 hex digits. Checked only where operators type them in
# (CLI, CSV, admin API), never on webhook input.
LINE_USER_ID = re.compile(r"^U[0-9a-f]{32}$")
MAX_EXTERNAL_ID = 512


def check_pair(external_id: str, line_user_id: str) -> str | None:
    """Why the pair is unacceptable, or None."""
    if not external_id or not external_id.strip():
        return "external_id is empty"
    if len(external_id) > MAX_EXTERNAL_ID:
        return "external_id is too long"
    if "\n" in external_id:
        return "external_id contains a newline"
    if not LINE_USER_ID.match(line_user_id or ""):
        return "LINE user id must be 'U' followed by 32 hex digits"
    return None


def link(r: redis.Redis, keys: Keys, external_id: str, line_user_id: str, *, now_ms: int) -> bool:
    return bool(script(r, "link")(keys=[keys.links_line, keys.links_ext, keys.outbox_ready],
                                  args=["link", external_id, line_user_id, now_ms]))


def unlink(r: redis.Redis, keys: Keys, external_id: str) -> bool:
    return bool(script(r, "link")(keys=[keys.links_line, keys.links_ext, keys.outbox_ready],
                                  args=["unlink", external_id, "", 0]))


def external_ids(r: redis.Redis, keys: Keys, line_user_id: str) -> list[str]:
    v = r.hget(keys.links_line, line_user_id)
    return v.decode().split("\n") if v else []


def line_user(r: redis.Redis, keys: Keys, external_id: str) -> str | None:
    v = r.hget(keys.links_ext, external_id)
    return v.decode() if v else None


@dataclass(frozen=True)
class CsvRow:
    line: int
    external_id: str
    line_user_id: str
    error: str | None


def read_csv(text: Iterable[str]) -> Iterator[CsvRow]:
    """Rows of a ``external_id,native_line_id`` CSV, each with its line number and any problem."""
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        return
    names = [h.strip().lower() for h in header]
    if names[:2] != ["external_id", "native_line_id"]:
        yield CsvRow(1, "", "", "header must be: external_id,native_line_id")
        return
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < 2:
            yield CsvRow(line, "", "", "expected two columns")
            continue
        ext, uid = row[0].strip(), row[1].strip()
        yield CsvRow(line, ext, uid, check_pair(ext, uid))


def read_csv_text(data: str) -> Iterator[CsvRow]:
    return read_csv(io.StringIO(data))
