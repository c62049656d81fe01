"""A timer's schedule: an NCRONTAB expression on the local clock, or a constant interval.

``Scheduling/TimerSchedule.cs``, ``CronSchedule.cs`` and ``ConstantSchedule.cs``
(see the package's docstring).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from tools.devhost.app_settings import FunctionIndexingError
from tools.devhost.timer_trigger.ncrontab import CrontabError, CrontabSchedule


def local_now() -> datetime:
    """``DateTimeOffset.Now``: the local time, with its offset."""
    return datetime.now().astimezone()


def localize(wall: datetime) -> datetime:
    """A local wall-clock time as ``new DateTimeOffset(dateTime)`` reads it.

    An ambiguous time (the hour repeated when daylight saving ends) takes the
    standard offset, the later instant; a skipped one (when it starts) the offset
    before the change, which moves it forward: of the two readings, the later.
    """
    first = wall.replace(fold=0).astimezone()
    second = wall.replace(fold=1).astimezone()
    return max(first, second)


class Schedule(Protocol):
    """``TimerSchedule``."""

    @property
    def adjust_for_dst(self) -> bool:
        """Whether intervals account for daylight saving (``AdjustForDST``)."""

    def next_occurrence(self, now: datetime) -> datetime:
        """The next occurrence after ``now`` (aware, local)."""

    def describe(self) -> str:
        """As the host's logs show it (``Cron: '...'``, ``Constant: ...``)."""


@dataclass(frozen=True)
class CronSchedule:
    """``CronSchedule``: an NCRONTAB expression on the local clock."""

    crontab: CrontabSchedule
    adjust_for_dst: bool = True

    def next_occurrence(self, now: datetime) -> datetime:
        wall = now.astimezone().replace(tzinfo=None)
        found = self.crontab.next_occurrence(wall)
        if found is None:
            return datetime.max.replace(tzinfo=UTC)
        return localize(found)

    def describe(self) -> str:
        return f"Cron: '{self.crontab.expression}'"

    def more_often_than_once_a_minute(self, now: datetime) -> bool:
        """``ShouldDisableScheduleMonitor``: every field but the first is ``*``, and more than one
        occurrence falls in the next minute."""
        if not all(field.is_everything for field in self.crontab.fields[1:]):
            return False
        wall = now.astimezone().replace(tzinfo=None)
        occurrences = self.crontab.occurrences(wall, wall + timedelta(minutes=1))
        return sum(1 for _ in zip(range(2), occurrences, strict=False)) > 1


@dataclass(frozen=True)
class ConstantSchedule:
    """``ConstantSchedule``: a fixed interval after the time it is asked from."""

    interval: timedelta
    adjust_for_dst: bool = False

    def next_occurrence(self, now: datetime) -> datetime:
        return now + self.interval

    def describe(self) -> str:
        return f"Constant: {format_timespan(self.interval)}"


_TIMESPAN = re.compile(
    r"\s*(?:(?P<days>[0-9]+)|(?:(?P<d>[0-9]+)\.)?(?P<h>[0-9]+):(?P<m>[0-9]+)(?::(?P<s>[0-9]+)(?:\.(?P<f>[0-9]{1,7}))?)?)\s*"
)


def parse_timespan(text: str) -> timedelta | None:
    """.NET ``TimeSpan.TryParse`` (invariant culture): ``d``, ``[d.]hh:mm[:ss[.fffffff]]``.

    Hours up to 23, minutes and seconds up to 59. Negative intervals are refused here.
    """
    found = _TIMESPAN.fullmatch(text)
    if found is None:
        return None
    if found["days"] is not None:
        return timedelta(days=int(found["days"]))
    hours, minutes, seconds = int(found["h"]), int(found["m"]), int(found["s"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    fraction = found["f"]
    ticks = int(fraction) * 10 ** (7 - len(fraction)) if fraction else 0
    return timedelta(
        days=int(found["d"] or 0), hours=hours, minutes=minutes, seconds=seconds, microseconds=ticks // 10
    )


def format_timespan(interval: timedelta) -> str:
    """``TimeSpan.ToString()``: ``[d.]hh:mm:ss[.fffffff]``."""
    total = int(interval.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02}:{minutes:02}:{seconds:02}"
    if interval.microseconds:
        text += f".{interval.microseconds * 10:07}"
    return f"{days}.{text}" if days else text


def parse_schedule(expression: str) -> CronSchedule | ConstantSchedule:
    """``TimerSchedule.Create``: NCRONTAB (five fields without seconds, else six), else a TimeSpan.

    :raises FunctionIndexingError: neither, with the host's message.
    """
    tokens = [token for token in expression.split(" ") if token]
    with contextlib.suppress(CrontabError):
        return CronSchedule(CrontabSchedule.parse(expression, including_seconds=len(tokens) != 5))
    interval = parse_timespan(expression)
    if interval is not None and interval > timedelta(0):
        return ConstantSchedule(interval)
    raise FunctionIndexingError(
        f"The schedule expression '{expression}' was not recognized as a valid cron expression or "
        "timespan string."
    )


def next_occurrences(schedule: Schedule, count: int, now: datetime) -> list[datetime]:
    """``TimerSchedule.GetNextOccurrences``."""
    found = []
    for _ in range(count):
        now = schedule.next_occurrence(now)
        found.append(now)
    return found
