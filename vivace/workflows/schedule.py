"""Cron schedules: parse an expression and find its next tick.

Five fields (``minute hour day-of-month month day-of-week``) or six with seconds first;
each field takes ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n``/``a-b/n``;
month and weekday names (``jan``, ``mon``) are accepted; Sunday is 0 or 7. When both
day-of-month and day-of-week are restricted, a day matching either fires (classic cron).
Times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

from .errors import WorkflowDefinitionError

__all__ = ["Cron", "next_tick", "parse_cron"]

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}


class Cron:
    """A parsed cron expression (sets of allowed values per field)."""

    __slots__ = (
        "days",
        "dom_any",
        "dow_any",
        "expr",
        "hours",
        "minutes",
        "months",
        "seconds",
        "weekdays",
    )

    def __init__(self, expr: str) -> None:
        fields = expr.split()
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise WorkflowDefinitionError(
                f"cron expression {expr!r}: expected 5 fields (or 6 with seconds)"
            )
        self.expr = expr
        self.seconds = _field(fields[0], 0, 59, {}, expr)
        self.minutes = _field(fields[1], 0, 59, {}, expr)
        self.hours = _field(fields[2], 0, 23, {}, expr)
        self.days = _field(fields[3], 1, 31, {}, expr)
        self.months = _field(fields[4], 1, 12, _MONTHS, expr)
        weekdays = _field(fields[5], 0, 7, _DAYS, expr)
        self.weekdays = frozenset(0 if d == 7 else d for d in weekdays)
        self.dom_any = fields[3] in ("*", "?")
        self.dow_any = fields[5] in ("*", "?")

    def _day_ok(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_any and self.dow_any:
            return True
        if self.dom_any:
            return dow
        if self.dow_any:
            return dom
        return dom or dow

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (UTC)."""
        if after.tzinfo is None:
            after = after.replace(tzinfo=UTC)
        t = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        for _ in range(366 * 5 * 24 * 60):  # bounded: an impossible date (Feb 30) ends
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1
                )
                continue
            if not self._day_ok(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise WorkflowDefinitionError(f"cron expression {self.expr!r} never fires")


def _field(text: str, lo: int, hi: int, names: dict[str, int], expr: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.lower().split(","):
        step = 1
        if "/" in part:
            part, _, step_text = part.partition("/")
            step = _num(step_text, {}, expr)
            if step < 1:
                raise WorkflowDefinitionError(f"cron expression {expr!r}: bad step {step_text!r}")
        if part in ("*", "?"):
            a, b = lo, hi
        elif "-" in part:
            x, _, y = part.partition("-")
            a, b = _num(x, names, expr), _num(y, names, expr)
        else:
            a = _num(part, names, expr)
            b = hi if step > 1 else a
        if not (lo <= a <= hi and lo <= b <= hi and a <= b):
            raise WorkflowDefinitionError(f"cron expression {expr!r}: {part!r} is out of range")
        out.update(range(a, b + 1, step))
    return frozenset(out)


def _num(text: str, names: dict[str, int], expr: str) -> int:
    if text in names:
        return names[text]
    try:
        return int(text)
    except ValueError:
        raise WorkflowDefinitionError(
            f"cron expression {expr!r}: {text!r} is not a number"
        ) from None


@lru_cache(maxsize=256)
def parse_cron(expr: str) -> Cron:
    """Parse (and cache) a cron expression; raises ``WorkflowDefinitionError``."""
    return Cron(expr)


def next_tick(expr: str, after: datetime) -> datetime:
    return parse_cron(expr).next_after(after)
