"""NCRONTAB expressions, as atifaziz/NCrontab parses them and finds their occurrences.

``CrontabSchedule.cs``, ``CrontabField.cs`` and ``CrontabFieldImpl.cs``: fields,
ranges (reversed ones swapped), lists, steps, names (any case, any prefix: ``MON``,
``Jan``), day of week 0-6 (Sunday is 0; 7 is refused), and ``TryGetNextOccurrence``:
a day must match *both* the day-of-month and the day-of-week fields (not either, as
in Vixie cron).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime


class CrontabError(ValueError):
    """An expression NCrontab refuses, with its message."""


@dataclass(frozen=True)
class _Kind:
    name: str
    minimum: int
    maximum: int
    names: tuple[str, ...] = ()


SECOND = _Kind("Second", 0, 59)
MINUTE = _Kind("Minute", 0, 59)
HOUR = _Kind("Hour", 0, 23)
DAY = _Kind("Day", 1, 31)
MONTH = _Kind(
    "Month",
    1,
    12,
    (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
)
DAY_OF_WEEK = _Kind(
    "DayOfWeek", 0, 6, ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
)
_NUMBER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class CrontabField:
    """The values one field of an expression allows (``CrontabField``)."""

    kind: _Kind
    values: frozenset[int]

    @property
    def first(self) -> int:
        """``GetFirst``: the smallest value, or -1."""
        return min(self.values) if self.values else -1

    def next(self, start: int) -> int:
        """``Next``: the smallest value not below ``start``, or -1."""
        return min((value for value in self.values if value >= start), default=-1)

    def __contains__(self, value: object) -> bool:
        return value in self.values

    @property
    def is_everything(self) -> bool:
        """Formatted as ``*`` (every value of the field)."""
        return self.values == frozenset(range(self.kind.minimum, self.kind.maximum + 1))

    @classmethod
    def parse(cls, kind: _Kind, text: str) -> CrontabField:
        """``CrontabFieldImpl.InternalParse``: lists, ``*``, ranges, steps, values and names."""
        values: set[int] = set()
        try:
            _accumulate_field(kind, text, values)
        except CrontabError as error:
            raise CrontabError(
                f"'{text}' is not a valid [{kind.name}] crontab field expression. {error}"
            ) from None
        return cls(kind, frozenset(values))


def _parse_value(kind: _Kind, text: str) -> int:
    if not text:
        raise CrontabError("A crontab field value cannot be empty.")
    if text[0] in "0123456789":
        if not re.fullmatch(r"[0-9]+", text):
            raise CrontabError(f"'{text}' is not a number.")
        return int(text)
    if not kind.names:
        raise CrontabError(
            f"'{text}' is not a valid [{kind.name}] crontab field value. It must be a numeric value between "
            f"{kind.minimum} and {kind.maximum} (all inclusive)."
        )
    for index, name in enumerate(kind.names):
        if name.lower().startswith(text.lower()):  # CompareInfo.IsPrefix(name, text, IgnoreCase)
            return index + kind.minimum
    raise CrontabError(
        f"'{text}' is not a known value name. Use one of the following: {', '.join(kind.names)}."
    )


def _accumulate_field(kind: _Kind, text: str, values: set[int]) -> None:
    if not text:
        raise CrontabError("A crontab field value cannot be empty.")
    if text.find(",") > 0:
        for item in text.split(","):
            _accumulate_field(kind, item, values)
        return
    every: int | None = None
    slash = text.find("/")
    if slash > 0:
        if not _NUMBER.fullmatch(text[slash + 1 :]):
            raise CrontabError(f"'{text[slash + 1 :]}' is not a number.")
        every = int(text[slash + 1 :])
        text = text[:slash]
    if text == "*":
        _accumulate(kind, -1, -1, every or 1, values)
        return
    dash = text.find("-")
    if dash > 0:
        _accumulate(
            kind, _parse_value(kind, text[:dash]), _parse_value(kind, text[dash + 1 :]), every or 1, values
        )
        return
    value = _parse_value(kind, text)
    if every is not None:
        _accumulate(kind, value, kind.maximum, every, values)
    else:
        _accumulate(kind, value, value, 1, values)


def _accumulate(kind: _Kind, start: int, end: int, interval: int, values: set[int]) -> None:
    """``CrontabField.Accumulate``, with its range checks."""

    def out_of_range(value: int, bound: str) -> CrontabError:
        limit = "maximum" if bound == "higher" else "minimum"
        return CrontabError(
            f"{value} is {bound} than the {limit} allowable value for the [{kind.name}] field. "
            f"Value must be between {kind.minimum} and {kind.maximum} (all inclusive)."
        )

    if start == end:
        if start < 0:
            start, end = kind.minimum, kind.maximum
        elif start < kind.minimum:
            raise out_of_range(start, "lower")
        elif start > kind.maximum:
            raise out_of_range(start, "higher")
    else:
        if start > end:
            start, end = end, start
        if start < kind.minimum:
            raise out_of_range(start, "lower")
        if end > kind.maximum:
            raise out_of_range(end, "higher")
    values.update(range(start, end + 1, max(1, interval)))


@dataclass(frozen=True)
class CrontabSchedule:
    """An NCRONTAB expression: ``{second} {minute} {hour} {day} {month} {day-of-week}`` (second optional)."""

    expression: str
    seconds: CrontabField | None
    minutes: CrontabField
    hours: CrontabField
    days: CrontabField
    months: CrontabField
    days_of_week: CrontabField

    @classmethod
    def parse(cls, expression: str, *, including_seconds: bool = True) -> CrontabSchedule:
        """``CrontabSchedule.Parse`` (fields separated by spaces).

        :raises CrontabError: with NCrontab's message.
        """
        tokens = [token for token in expression.split(" ") if token]
        expected = 6 if including_seconds else 5
        if len(tokens) != expected:
            sequence = "minutes, hours, days, months, and days of week"
            components = (
                f"6 components of a schedule in the sequence of seconds, {sequence}"
                if including_seconds
                else f"5 components of a schedule in the sequence of {sequence}"
            )
            raise CrontabError(
                f"'{expression}' is an invalid crontab expression. It must contain {components}."
            )
        kinds = (SECOND, MINUTE, HOUR, DAY, MONTH, DAY_OF_WEEK)[6 - expected :]
        fields = [CrontabField.parse(kind, token) for kind, token in zip(kinds, tokens, strict=True)]
        seconds = fields.pop(0) if including_seconds else None
        return cls(expression, seconds, *fields)

    @property
    def fields(self) -> tuple[CrontabField, ...]:
        """The fields of the expression, as written (without seconds for a five-field one)."""
        rest = (self.minutes, self.hours, self.days, self.months, self.days_of_week)
        return rest if self.seconds is None else (self.seconds, *rest)

    def next_occurrence(self, base: datetime, end: datetime = datetime.max) -> datetime | None:
        """``TryGetNextOccurrence``: the first occurrence strictly after ``base`` (naive), before ``end``.

        :returns: ``None`` when there is none before ``end`` (or year 9999).
        """
        while True:
            found = self._next_by_date(base, end)
            if found is None or found == end:
                return None
            # NCrontab checks the day of week last, and else tries again from the day's last second.
            if (found.weekday() + 1) % 7 in self.days_of_week:
                return found
            base = found.replace(hour=23, minute=59, second=59, microsecond=0)

    def _next_by_date(self, base: datetime, end: datetime) -> datetime | None:  # noqa: PLR0912
        nil = -1
        seconds = self.seconds or _SECOND_ZERO
        year, month, day = base.year, base.month, base.day
        hour, minute, second = base.hour, base.minute, base.second + 1

        second = seconds.next(second)
        if second == nil:
            second = seconds.first
            minute += 1

        minute = self.minutes.next(minute)
        if minute == nil:
            second, minute = seconds.first, self.minutes.first
            hour += 1
        elif minute > base.minute:
            second = seconds.first

        hour = self.hours.next(hour)
        if hour == nil:
            minute, hour = self.minutes.first, self.hours.first
            day += 1
        elif hour > base.hour:
            second, minute = seconds.first, self.minutes.first

        day = self.days.next(day)
        while True:  # RetryDayMonth
            if day == nil:
                second, minute, hour = seconds.first, self.minutes.first, self.hours.first
                day = self.days.first
                month += 1
            elif day > base.day:
                second, minute, hour = seconds.first, self.minutes.first, self.hours.first

            month = self.months.next(month)
            if month == nil:
                second, minute, hour = seconds.first, self.minutes.first, self.hours.first
                day, month = self.days.first, self.months.first
                year += 1
            elif month > base.month:
                second, minute, hour = seconds.first, self.minutes.first, self.hours.first
                day = self.days.first

            if year > datetime.max.year:
                return None
            date_changed = day != base.day or month != base.month or year != base.year
            if day > 28 and date_changed and day > calendar.monthrange(year, month)[1]:
                if year >= end.year and month >= end.month and day >= end.day:
                    return end
                day = nil
                continue
            break

        found = datetime(year, month, day, hour, minute, second)
        return end if found >= end else found

    def occurrences(self, base: datetime, end: datetime) -> Iterator[datetime]:
        """``GetNextOccurrences``: every occurrence after ``base`` and before ``end``."""
        occurrence = self.next_occurrence(base, end)
        while occurrence is not None and occurrence < end:
            yield occurrence
            occurrence = self.next_occurrence(occurrence, end)

    def __str__(self) -> str:
        return self.expression


_SECOND_ZERO = CrontabField(SECOND, frozenset({0}))
