"""A check's result and the exit code of a list of them."""

from shared.check import (
    EXIT_FAILED, EXIT_OK, EXIT_WARNINGS, failed, exit_code, passed, skipped, warning,
)


def test_exit_code_failures_beat_warnings_beat_success():
    ok, warn, bad, skip = passed("a", "fine"), warning("b", "meh", "do x"), failed("c", "broken", "do y"), \
        skipped("d", "not checked")
    assert exit_code([ok, skip]) == EXIT_OK == 0
    assert exit_code([ok, warn, skip]) == EXIT_WARNINGS == 3
    assert exit_code([warn, bad, ok]) == EXIT_FAILED == 1
    assert exit_code([]) == EXIT_OK


def test_ok_and_level():
    assert (passed("a", "").ok, passed("a", "").level) == (True, None)
    assert (failed("a", "", "").ok, failed("a", "", "").level) == (False, "error")
    assert (warning("a", "", "").ok, warning("a", "", "").level) == (False, "warning")
    assert (skipped("a", "").ok, skipped("a", "").level) == (None, None)


def test_one_line_with_the_fix():
    line = failed("redis.eviction", "maxmemory-policy is allkeys-lru", "set noeviction").line()
    assert line == "FAIL  redis.eviction: maxmemory-policy is allkeys-lru -> fix: set noeviction"
    assert "\n" not in line
    assert warning("redis.aof", "appendonly is off", "turn it on").line() == \
        "WARN  redis.aof: appendonly is off (warning) -> fix: turn it on"
    assert passed("redis.version", "Redis 7.0.15").line() == "ok    redis.version: Redis 7.0.15"


def test_json_has_every_field():
    assert failed("n", "d", "f").to_json() == {"name": "n", "ok": False, "status": "fail", "level": "error",
                                               "detail": "d", "fix": "f"}
