"""RESYNC_SCHEDULE's cron fields: each field's syntax and range, and agreement with Celery's crontab."""

import pytest

from shared import cron

GOOD = [
    "0 3 * * *", "*/15 * * * *", "0,30 8-18 * * mon-fri", "5 4 1,15 jan,jul sun", "0 */2 1-31/2 * *",
    "59 23 31 12 6", "0 0 * * 0", "0 22-2 * * *", "0 0 * * fri-mon", "0 0 * DEC SAT", "0 8-18/3 * 2-11 1-5",
    "  0   3  *  *  *  ",
]
BAD = [
    ("0 3 * *", "expected 5 cron fields"),
    ("0 3 * * * *", "expected 5 cron fields"),
    ("60 * * * *", "minute: 60 is outside 0-59"),
    ("* 24 * * *", "hour: 24 is outside 0-23"),
    ("* * 0 * *", "day of month: 0 is outside 1-31"),
    ("* * 32 * *", "day of month: 32 is outside 1-31"),
    ("* * * 13 *", "month: 13 is outside 1-12"),
    ("* * * * 7", "day of week: 7 is outside 0-6"),
    ("* * * foo *", "month: 'foo' is not a number or one of jan..dec"),
    ("* * * * funday", "day of week: 'funday' is not a number or one of sun..sat"),
    ("mon * * * *", "minute: 'mon' is not a number"),
    ("*/0 * * * *", "minute: step must be positive"),
    ("5/10 * * * *", "minute: a step needs * or a range"),
    ("1,,2 * * * *", "minute: cannot read ''"),
    ("1-5-7 * * * *", "minute: cannot read '1-5-7'"),
    ("-1 * * * *", "minute: cannot read '-1'"),
    ("*/ * * * *", "minute: cannot read '*/'"),
    ("? * * * *", "minute: cannot read '?'"),
]


@pytest.mark.parametrize("expr", GOOD)
def test_good(expr):
    assert cron.check(expr) == " ".join(expr.split())


@pytest.mark.parametrize("expr, message", BAD)
def test_bad_names_the_field(expr, message):
    with pytest.raises(ValueError, match="^" + message.replace("*", r"\*").replace("?", r"\?")):
        cron.check(expr)


@pytest.mark.parametrize("expr", GOOD)
def test_what_passes_here_celery_can_schedule(expr):
    schedules = pytest.importorskip("celery.schedules")
    minute, hour, dom, month, dow = expr.split()
    schedules.crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow)


@pytest.mark.parametrize("expr", [e for e, _ in BAD if len(e.split()) == 5 and not e.startswith(("1-5-7", "mon"))])
def test_what_fails_here_celery_refuses_too(expr):
    """Apart from two lenient readings of Celery's (trailing text after a range; names in any field)."""
    schedules = pytest.importorskip("celery.schedules")
    minute, hour, dom, month, dow = expr.split()
    with pytest.raises(Exception):
        schedules.crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow)
