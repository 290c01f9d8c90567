"""Five-field cron expressions, checked field by field the way Celery's ``crontab`` reads them. Pure.

``minute hour day-of-month month day-of-week``, each field a comma-separated
list of parts; a part is ``*``, a value, or a range ``a-b``, optionally with a
step ``/n`` after ``*`` or a range (``*/15``, ``8-18/2``). Ranges:

    minute 0-59   hour 0-23   day-of-month 1-31   month 1-12 or jan..dec
    day-of-week 0-6 (0 = Sunday) or sun..sat

A range may wrap (``fri-mon``, ``22-2``), as in Celery. This accepts a subset
of what Celery accepts (Celery also takes month names in the minute field and
ignores trailing text after a range like ``1-5-7``): anything that passes here
builds a ``celery.schedules.crontab``, so beat never starts with a schedule it
cannot read. ``shared/`` does not import Celery; ``tests/shared/test_cron.py``
checks the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@dataclass(frozen=True)
class CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] means low + i

    def value(self, token: str) -> int:
        if token.isdigit():
            v = int(token)
        elif token.lower() in self.names:
            v = self.low + self.names.index(token.lower())
        elif self.names:
            raise ValueError(f"{self.name}: {token!r} is not a number or one of {self.names[0]}..{self.names[-1]}")
        else:
            raise ValueError(f"{self.name}: {token!r} is not a number")
        if not self.low <= v <= self.high:
            raise ValueError(f"{self.name}: {v} is outside {self.low}-{self.high}")
        return v


FIELDS = (
    CronField("minute", 0, 59),
    CronField("hour", 0, 23),
    CronField("day of month", 1, 31),
    CronField("month", 1, 12, MONTHS),
    CronField("day of week", 0, 6, WEEKDAYS),
)

_PART = re.compile(r"^(?:(?P<star>\*)|(?P<a>[0-9A-Za-z]+)(?:-(?P<b>[0-9A-Za-z]+))?)(?:/(?P<step>[0-9]+))?$")


def check_field(field: CronField, text: str) -> None:
    """Raise ValueError naming the field when ``text`` is not a valid value list for it."""
    if not text:
        raise ValueError(f"{field.name}: empty")
    for part in text.split(","):
        m = _PART.match(part)
        if not m:
            raise ValueError(f"{field.name}: cannot read {part!r} (expected *, N, N-M, */S or N-M/S)")
        if m["a"] is not None:
            field.value(m["a"])
            if m["b"] is not None:
                field.value(m["b"])
            elif m["step"] is not None:
                # Celery reads "5/10" as the literal "5/10" and fails; say so here instead.
                hint = f"{m['a']}-{field.high}/{m['step']}"
                raise ValueError(f"{field.name}: a step needs * or a range before it ({part!r}: try {hint})")
        if m["step"] is not None and int(m["step"]) <= 0:
            raise ValueError(f"{field.name}: step must be positive ({part!r})")


def check(expression: str) -> str:
    """The expression with its fields separated by single spaces; ValueError naming the bad field."""
    parts = expression.split()
    if len(parts) != len(FIELDS):
        raise ValueError(f"expected {len(FIELDS)} cron fields (minute hour day-of-month month day-of-week), "
                         f"got {len(parts)}")
    for field, text in zip(FIELDS, parts):
        check_field(field, text)
    return " ".join(parts)
