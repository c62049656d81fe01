"""Timer-triggered functions for the local host, run the way the Functions host runs them.

The Functions host runs ``timerTrigger`` bindings with the timers of
Microsoft.Azure.WebJobs.Extensions (Azure/azure-webjobs-sdk-extensions,
``src/WebJobs.Extensions/Extensions/Timers/``), which parse schedules with
NCrontab (atifaziz/NCrontab). This module follows their source:

- ``Scheduling/TimerSchedule.cs`` ``Create``: the ``schedule`` (``%setting%``
  resolved as any binding expression) is an NCRONTAB expression if NCrontab
  parses it, else a .NET TimeSpan (a constant interval), else the function is
  in error ("... was not recognized as a valid cron expression or timespan
  string."); ``useMonitor`` is turned off for schedules more frequent than once
  a minute (``ShouldDisableScheduleMonitor``, and constant intervals under a
  minute);
- ``Scheduling/CronSchedule.cs``: six fields (with seconds), or five (without)
  when the expression has exactly five; occurrences are computed on the local
  clock (``DateTimeOffset.Now``: the machine's time zone, ``TZ``; UTC in Azure
  unless ``WEBSITE_TIME_ZONE``); an ambiguous local time is read in standard
  time, a skipped one moves forward, as .NET's ``DateTimeOffset`` does;
- NCrontab ``CrontabSchedule.cs``, ``CrontabField.cs`` and
  ``CrontabFieldImpl.cs``: fields, ranges (reversed ones swapped), lists, steps,
  names (any case, any prefix: ``MON``, ``Jan``), day of week 0-6 (Sunday is 0;
  7 is refused), and ``TryGetNextOccurrence``: a day must match *both* the
  day-of-month and the day-of-week fields (not either, as in Vixie cron);
- ``Listener/TimerListener.cs``: on start, a past-due occurrence (see below) or
  ``runOnStartup`` runs at once; otherwise the timer waits for the next
  occurrence. One invocation at a time per function: the timer is started
  again only once an invocation has returned, for the next occurrence after
  the time the finished one was *started* (or was due, if it fired early): an
  invocation that overruns its period is followed at once by one more, and the
  other occurrences it covered are skipped, not queued. Stopping cancels the
  timer and waits for the invocation in flight;
- ``Scheduling/ScheduleMonitor.cs`` ``CheckPastDueAsync`` and
  ``Scheduling/FileSystemScheduleMonitor.cs`` /
  ``WebJobs.Extensions.Timers.Storage/StorageScheduleMonitor.cs``: with
  ``useMonitor`` (the default) the schedule status (``Last``, ``Next``,
  ``LastUpdated``) is kept across restarts; if, at start, the recorded ``Next``
  has passed, the function runs at once with ``IsPastDue`` true. That is the
  only way an invocation is past due: there is no lateness threshold. A status
  whose ``Next`` does not follow from the schedule (the schedule changed) is
  reset. The host keeps it in the ``azure-webjobs-hosts`` blob container, at
  ``timers/<host id>/Host.Functions.<name>/status``; this module keeps the same
  path under a local folder (:data:`DEFAULT_STATE_DIRECTORY`);
- ``TimerInfo.cs`` and ``azure.functions.timer.TimerRequestConverter``: the
  function gets a ``TimerRequest`` with ``past_due``, ``schedule_status``
  (empty without a monitor) and ``schedule``;
- ``src/WebJobs.Script/Host/ScriptHostIdProvider.cs`` and ``Utility.GetStableHash``
  in Azure/azure-functions-host: the local host id.

Not reproduced: the singleton blob lease that keeps one listener per function
across instances, and the host's extra adjustments of occurrences near daylight
saving changes (``CronSchedule.TryAdjustAmbiguousTime``).
"""

from __future__ import annotations

import calendar
import contextlib
import json
import logging
import re
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from azure.functions.timer import TimerRequest

from tools.devhost.queue_trigger import FunctionIndexingError, app_setting, resolve_setting_tokens

logger = logging.getLogger("devhost.timer")

#: Where schedule statuses are kept (the host: the ``azure-webjobs-hosts`` blob container).
DEFAULT_STATE_DIRECTORY = Path(tempfile.gettempdir()) / "devhost-storage" / "azure-webjobs-hosts"
#: ``System.Timers.Timer`` takes at most ~24.8 days; the listener waits in steps of 24 (``MaxTimerInterval``).
MAX_TIMER_INTERVAL = timedelta(days=24)
#: ``ConfigurationSectionNames.HostIdPath``: an explicit host id.
HOST_ID_SETTING = "AzureFunctionsWebHost:hostid"
#: ``ScriptConstants.MaximumHostIdLength``.
MAXIMUM_HOST_ID_LENGTH = 32
#: The smallest timer interval (``GetNextTimerInterval``: one tick).
ONE_TICK = timedelta(microseconds=1)


# --------------------------------------------------------------------------------------------------
# NCRONTAB


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


# --------------------------------------------------------------------------------------------------
# Schedules


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


def _binding_bool(value: object, default: bool) -> bool:
    """A ``function.json`` boolean as ``JToken.ToObject<bool>`` reads it (a JSON bool, or "true"/"false")."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise FunctionIndexingError(f"'{value}' is not a valid boolean.")
    return text == "true"


# --------------------------------------------------------------------------------------------------
# Functions


@dataclass(frozen=True)
class TimerTrigger:
    """A function folder's ``timerTrigger`` binding, resolved against the app settings."""

    function_name: str
    parameter: str
    schedule: CronSchedule | ConstantSchedule
    run_on_startup: bool = False
    use_monitor: bool = True

    @property
    def timer_name(self) -> str:
        """``TimerTriggerBinding``'s timer name: ``<declaring type>.<method>``, ``Host.Functions.<name>``."""
        return f"Host.Functions.{self.function_name}"

    @classmethod
    def from_binding(
        cls,
        function_name: str,
        binding: Mapping[str, Any],
        environ: Mapping[str, str],
        now: datetime | None = None,
    ) -> TimerTrigger:
        """Resolve ``schedule`` (``%setting%``) and read ``runOnStartup`` and ``useMonitor``.

        :raises FunctionIndexingError: what the host logs for this function, which it then does not run.
        """
        expression = resolve_setting_tokens(str(binding.get("schedule") or ""), environ)
        schedule = parse_schedule(expression)
        use_monitor = _binding_bool(binding.get("useMonitor"), default=True)
        if use_monitor:
            if isinstance(schedule, ConstantSchedule):
                use_monitor = schedule.interval >= timedelta(minutes=1)
            else:
                use_monitor = not schedule.more_often_than_once_a_minute(now or local_now())
            if not use_monitor:
                logger.debug(
                    "Function '%s': UseMonitor changed to false based on schedule frequency.", function_name
                )
        return cls(
            function_name=function_name,
            parameter=str(binding.get("name") or "timer"),
            schedule=schedule,
            run_on_startup=_binding_bool(binding.get("runOnStartup"), default=False),
            use_monitor=use_monitor,
        )


#: Calls a function's entry point with the trigger value and an invocation id; returns its result.
Invoke = Callable[[TimerRequest, str], Any]


@dataclass(frozen=True)
class TimerFunction:
    """A timer-triggered function, ready to be called."""

    trigger: TimerTrigger
    invoke: Invoke

    @property
    def name(self) -> str:
        return self.trigger.function_name


# --------------------------------------------------------------------------------------------------
# Schedule status


@dataclass(frozen=True)
class ScheduleStatus:
    """``ScheduleStatus``: ``None`` stands for .NET's ``default(DateTime)``."""

    last: datetime | None
    next: datetime
    last_updated: datetime | None

    def to_json(self) -> dict[str, str]:
        """As Newtonsoft.Json writes it (ISO 8601, with the offset)."""

        def write(value: datetime | None) -> str:
            return "0001-01-01T00:00:00" if value is None else value.isoformat()

        return {"Last": write(self.last), "Next": write(self.next), "LastUpdated": write(self.last_updated)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ScheduleStatus:
        def read(value: object) -> datetime | None:
            text = str(value or "")
            if not text or text.startswith("0001-01-01"):
                return None
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.astimezone()

        following = read(document.get("Next"))
        return cls(read(document.get("Last")), following or local_now(), read(document.get("LastUpdated")))


class ScheduleMonitor:
    """``ScheduleMonitor`` kept in files: ``<directory>/timers/<host id>/<timer name>/status``.

    The same path as ``StorageScheduleMonitor``'s blob in the ``azure-webjobs-hosts`` container;
    read and written like ``FileSystemScheduleMonitor`` (a write that fails is only logged).
    """

    def __init__(self, directory: Path, host_id: str) -> None:
        self.directory = directory / "timers" / host_id

    def path(self, timer_name: str) -> Path:
        return self.directory / timer_name / "status"

    def get_status(self, timer_name: str) -> ScheduleStatus | None:
        path = self.path(timer_name)
        try:
            return ScheduleStatus.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            logger.warning("Timer status %s cannot be read; starting afresh", path)
            return None

    def update_status(self, timer_name: str, status: ScheduleStatus) -> None:
        path = self.path(timer_name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name("status.partial")
            partial.write_text(json.dumps(status.to_json()), encoding="utf-8")
            partial.replace(path)
        except OSError:
            logger.exception("Function '%s' failed to update the timer trigger status.", timer_name)

    def check_past_due(
        self, timer_name: str, now: datetime, schedule: Schedule, last_status: ScheduleStatus | None
    ) -> tuple[timedelta, ScheduleStatus]:
        """``CheckPastDueAsync``: how long past due the recorded next occurrence is (zero if not), and the
        status as recorded now."""
        if last_status is None:
            status = ScheduleStatus(None, schedule.next_occurrence(now), now)
            self.update_status(timer_name, status)
        else:
            status = last_status
            if status.last is not None:
                expected, updated = schedule.next_occurrence(status.last), status.last
            elif status.last_updated is not None:
                expected, updated = schedule.next_occurrence(status.last_updated), status.last_updated
            else:
                expected, updated = schedule.next_occurrence(now), now
            if status.next != expected:
                # The schedule changed: start from it, and never as past due for an occurrence of the old one.
                if now > expected:
                    expected, updated = schedule.next_occurrence(now), now
                status = ScheduleStatus(None, expected, updated)
                self.update_status(timer_name, status)
        late = now - status.next
        return (late if late > timedelta(0) else timedelta(0)), status


def stable_hash(value: str) -> int:
    """``Utility.GetStableHash``: ``hash = hash * 31 + c`` from 23 over UTF-16 code units, in 32 bits."""
    data = value.encode("utf-16-le")
    number = 23
    for index in range(0, len(data), 2):
        number = (number * 31 + int.from_bytes(data[index : index + 2], "little")) & 0xFFFFFFFF
    return number - (1 << 32) if number >= 1 << 31 else number


def host_id(script_path: Path, environ: Mapping[str, str]) -> str:
    """``ScriptHostIdProvider``: the ``AzureFunctionsWebHost:hostid`` setting, or the local default,
    ``<machine name, letters and digits>-<abs(stable hash of the app's path)>``, lower-cased, at most 32."""
    explicit = app_setting(environ, HOST_ID_SETTING)
    if explicit is not None:
        return explicit
    machine = "".join(char for char in socket.gethostname().split(".")[0] if char.isalnum())
    identifier = f"{machine}-{abs(stable_hash(str(script_path)))}"[:MAXIMUM_HOST_ID_LENGTH]
    return identifier.lower().rstrip("-")


# --------------------------------------------------------------------------------------------------
# Listening


def _format_occurrence(value: datetime) -> str:
    """``TimerInfo.FormatNextOccurrences``: UTC as such, a local time with its UTC time beside it."""
    pattern = "%m/%d/%Y %H:%M:%S"
    utc = value.astimezone(UTC)
    if value.utcoffset() == timedelta(0) and time.timezone == 0 and not time.daylight:
        return utc.strftime(pattern) + "Z"
    offset = value.strftime("%z")
    return f"{value.strftime(pattern)}{offset[:3]}:{offset[3:]} ({utc.strftime(pattern)}Z)"


class TimerListener:
    """Runs one function on its schedule, as ``TimerListener`` does (see the module's docstring)."""

    def __init__(
        self,
        function: TimerFunction,
        monitor: ScheduleMonitor | None,
        *,
        clock: Callable[[], datetime] = local_now,
    ) -> None:
        self.function = function
        self.monitor = monitor if function.trigger.use_monitor else None
        self._clock = clock
        self._stopping = threading.Event()
        self._invocation_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.status: ScheduleStatus | None = None
        self._startup: tuple[bool, datetime | None] | None = None  # (past due, original schedule)

    @property
    def schedule(self) -> CronSchedule | ConstantSchedule:
        return self.function.trigger.schedule

    def start(self) -> None:
        """``StartAsync``: read the status, decide on a startup invocation, start the timer thread."""
        trigger = self.function.trigger
        now = self._clock()
        past_due = False
        if self.monitor is not None:
            status = self.monitor.get_status(trigger.timer_name)
            logger.debug("Function '%s' initial status: %s", self.function.name, status)
            late, self.status = self.monitor.check_past_due(trigger.timer_name, now, self.schedule, status)
            past_due = late > timedelta(0)
        if self.status is None:
            self.status = ScheduleStatus(None, self.schedule.next_occurrence(now), None)
        occurrences = "\n".join(_format_occurrence(o) for o in next_occurrences(self.schedule, 5, now))
        logger.info(
            "The next 5 occurrences of the '%s' schedule (%s) will be:\n%s",
            self.function.name,
            self.schedule.describe(),
            occurrences,
        )
        if past_due:
            self._startup = (True, self.status.next)
        elif trigger.run_on_startup:
            self._startup = (False, None)
        self._thread = threading.Thread(target=self._run, name=f"timer-{self.function.name}", daemon=True)
        self._thread.start()

    def stop_timer(self) -> None:
        """Cancel the timer: no invocation starts from now on."""
        self._stopping.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """``StopAsync``: cancel the timer and wait (up to ``timeout``) for the invocation in flight.

        :returns: whether no invocation was still running.
        """
        self.stop_timer()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("Function %s: invocation still running at shutdown", self.function.name)
                return False
        return True

    def _run(self) -> None:
        while not self._stopping.is_set():
            if self._startup is not None:
                is_past_due, original = self._startup
                self._startup = None
                if self._stopping.wait(0.001):  # StartupInvocationContext.IntervalMS
                    return
                if is_past_due:
                    logger.info("Function '%s' is past due on startup. Executing now.", self.function.name)
                    self.invoke(self._clock(), past_due=True, original_schedule=original)
                else:
                    logger.info(
                        "Function '%s' is configured to run on startup. Executing now.", self.function.name
                    )
                    self.invoke(self._clock(), run_on_startup=True)
                continue
            status = self.status or ScheduleStatus(None, self.schedule.next_occurrence(self._clock()), None)
            interval = max(status.next - self._clock(), ONE_TICK)
            while interval > MAX_TIMER_INTERVAL:  # the remaining interval, without invoking
                if self._stopping.wait(MAX_TIMER_INTERVAL.total_seconds()):
                    return
                interval -= MAX_TIMER_INTERVAL
            if self._stopping.wait(interval.total_seconds()):
                return
            self.invoke(self._clock())

    def invoke(
        self,
        invocation_time: datetime,
        *,
        past_due: bool = False,
        run_on_startup: bool = False,
        original_schedule: datetime | None = None,
    ) -> None:
        """``InvokeJobFunction``: one at a time; then the status moves on from when this one was due."""
        with self._invocation_lock:
            if self._stopping.is_set():
                return
            status = self.status or ScheduleStatus(None, self.schedule.next_occurrence(invocation_time), None)
            request = TimerRequest(
                past_due=past_due,
                schedule_status=status.to_json() if self.monitor is not None else None,
                schedule={"AdjustForDST": self.schedule.adjust_for_dst},
            )
            self._call(request, past_due=past_due, run_on_startup=run_on_startup, original=original_schedule)
            adjusted = invocation_time
            if not past_due and not run_on_startup and status.next > invocation_time:
                adjusted = status.next  # fired early: compute from when it was due
            self.status = ScheduleStatus(adjusted, self.schedule.next_occurrence(adjusted), adjusted)
            if self.monitor is not None:
                self.monitor.update_status(self.function.trigger.timer_name, self.status)

    def _call(
        self, request: TimerRequest, *, past_due: bool, run_on_startup: bool, original: datetime | None
    ) -> None:
        invocation_id = str(uuid.uuid4())
        reason = "IsPastDue" if past_due else "RunOnStartup" if run_on_startup else "Timer fired"
        started = time.perf_counter()
        try:
            self.function.invoke(request, invocation_id)
            succeeded = True
        except Exception:
            logger.exception("Function %s failed (invocation_id=%s)", self.function.name, invocation_id)
            succeeded = False
        logger.info(
            "timer %s -> %s (%.1f ms) invocation_id=%s reason=%s%s",
            self.function.name,
            "Succeeded" if succeeded else "Failed",
            (time.perf_counter() - started) * 1000,
            invocation_id,
            reason,
            f" original_schedule={original.isoformat()}" if original is not None else "",
        )


class TimerHost:
    """The timer listeners of a function app: one a function."""

    def __init__(
        self,
        functions: list[TimerFunction],
        *,
        root: Path | None = None,
        environ: Mapping[str, str] | None = None,
        state_directory: Path | None = None,
    ) -> None:
        self.functions = list(functions)
        self.listeners: list[TimerListener] = []
        self._root = root or Path.cwd()
        self._environ = dict(environ or {})
        self._state_directory = state_directory or DEFAULT_STATE_DIRECTORY

    def monitor(self) -> ScheduleMonitor:
        return ScheduleMonitor(self._state_directory, host_id(self._root, self._environ))

    def start(self) -> None:
        """Start every function's timer."""
        monitor = self.monitor() if any(f.trigger.use_monitor for f in self.functions) else None
        for function in self.functions:
            listener = TimerListener(function, monitor)
            listener.start()
            self.listeners.append(listener)

    def stop_timers(self) -> None:
        """Cancel every timer at once (invocations in flight go on)."""
        for listener in self.listeners:
            listener.stop_timer()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every listener, letting invocations in flight finish within ``timeout`` overall."""
        deadline = time.monotonic() + timeout
        self.stop_timers()
        for listener in self.listeners:
            listener.stop(max(0.0, deadline - time.monotonic()))
        self.listeners.clear()


__all__ = [
    "ConstantSchedule",
    "CronSchedule",
    "CrontabError",
    "CrontabSchedule",
    "ScheduleMonitor",
    "ScheduleStatus",
    "TimerFunction",
    "TimerHost",
    "TimerListener",
    "TimerTrigger",
    "host_id",
    "localize",
    "parse_schedule",
    "parse_timespan",
]
