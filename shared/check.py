"""A check's result (doctor, and the settings check every process makes at start), and what
a list of them means for the exit code. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"

EXIT_OK = 0
EXIT_FAILED = 1
# Only warning-level checks failed: works, but not as production should run.
EXIT_WARNINGS = 3


@dataclass(frozen=True)
class Check:
    """One check: ``status`` is ok, fail, warn (a failed check that is only a warning) or skip."""

    name: str
    status: str
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool | None:
        """True passed, False failed (error or warning), None not checked."""
        return None if self.status == SKIP else self.status == OK

    @property
    def level(self) -> str | None:
        """How bad a failed check is: "error" or "warning" (None when it passed or was skipped)."""
        return {FAIL: "error", WARN: "warning"}.get(self.status)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "status": self.status, "level": self.level,
                "detail": self.detail, "fix": self.fix}

    def line(self) -> str:
        """One line for the terminal."""
        label = {OK: "ok  ", FAIL: "FAIL", WARN: "WARN", SKIP: "skip"}[self.status]
        text = f"{label}  {self.name}: {self.detail}"
        if self.status == WARN:
            text += " (warning)"
        if self.fix and self.status in (FAIL, WARN):
            text += f" -> fix: {self.fix}"
        return text


def passed(name: str, detail: str) -> Check:
    return Check(name, OK, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, FAIL, detail, fix)


def warning(name: str, detail: str, fix: str) -> Check:
    return Check(name, WARN, detail, fix)


def skipped(name: str, detail: str) -> Check:
    return Check(name, SKIP, detail)


def exit_code(checks: Iterable[Check]) -> int:
    statuses = {c.status for c in checks}
    if FAIL in statuses:
        return EXIT_FAILED
    if WARN in statuses:
        return EXIT_WARNINGS
    return EXIT_OK
