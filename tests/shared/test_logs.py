import json
import logging

from shared.logs import bound, preview, setup_logging


def test_json_lines_carry_bound_context(capsys):
    setup_logging("json", "INFO")
    log = logging.getLogger("linesync.test")
    with bound(task_id="t-1", event_id="e-9"):
        log.info("hello %s", "there")
    log.info("outside")
    lines = [json.loads(x) for x in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["msg"] == "hello there" and lines[0]["task_id"] == "t-1" and lines[0]["event_id"] == "e-9"
    assert "task_id" not in lines[1]


def test_preview_is_short_and_safe():
    assert preview(b"x" * 500, 10) == "x" * 10 + "…"
    assert preview(b"\xff\xfe", 10) == "\ufffd\ufffd"
