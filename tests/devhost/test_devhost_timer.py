"""Timer-triggered functions in the local host, as the Functions host's timer extension runs them.

The process tests serve a throwaway function app written to a temporary folder;
its timer functions record each invocation as JSON lines in ``records.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.devhost.apps import RECORDING, ThrowawayApp, never_imported, wait_until, write_app
from tools.devhost import host as devhost
from tools.devhost.app_settings import FunctionIndexingError
from tools.devhost.timer_trigger import (
    ConstantSchedule,
    CronSchedule,
    CrontabError,
    CrontabSchedule,
    ScheduleMonitor,
    ScheduleStatus,
    TimerTrigger,
    host_id,
    parse_schedule,
    stable_hash,
)

#: The port's pass of `make test` runs these again, through the local host's own loader.
pytestmark = pytest.mark.through_host


#: Every timer function of the test app: records start and end; sleeps as its folder name says.
TIMER_SOURCE = (
    RECORDING
    + """

def main(timer: func.TimerRequest, context: func.Context) -> None:
    with _invocation() as running:
        _record(
            event="start",
            function=context.function_name,
            at=time.time(),
            running=running,
            past_due=timer.past_due,
            schedule_status=timer.schedule_status,
        )
        if context.function_name == "every":
            time.sleep(1.5)
        _record(event="end", function=context.function_name, at=time.time())
"""
)

MARKING_SOURCE = never_imported("timer")


def timer_binding(schedule: str, **extra: Any) -> dict[str, Any]:
    return {
        "bindings": [
            {"type": "timerTrigger", "direction": "in", "name": "timer", "schedule": schedule} | extra
        ]
    }


@dataclass
class TimerApp(ThrowawayApp):
    """A throwaway function app served by ``python -m tools.devhost``, its temp folder its own."""

    @property
    def temp(self) -> Path:
        return self.root / "tmp"

    def status_path(self, function: str) -> Path:
        """Where the host keeps the function's schedule status (``timers/<host id>/<timer>/status``)."""
        state = self.temp / "devhost-storage" / "azure-webjobs-hosts"
        return ScheduleMonitor(state, host_id(self.root.resolve(), {})).path(f"Host.Functions.{function}")

    def start(self, settings: dict[str, str]) -> TimerApp:
        self.temp.mkdir(exist_ok=True)
        environment = devhost.app_environment(settings) | {"TMPDIR": str(self.temp)}
        environment.pop("AzureFunctionsWebHost__hostid", None)
        self.spawn(environment)
        return self


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TimerApp]:
    """Timers every second (overrunning), on startup, past due, from a setting, unresolved and disabled."""
    root = tmp_path_factory.mktemp("timers")
    functions = {
        "every": (timer_binding("*/1 * * * * *"), TIMER_SOURCE),
        "startup": (timer_binding("0 0 0 1 1 *", runOnStartup=True, useMonitor=False), TIMER_SOURCE),
        "pastdue": (timer_binding("0 */5 * * * *"), TIMER_SOURCE),
        "from_setting": (timer_binding("%TIMER_SCHEDULE%"), TIMER_SOURCE),
        "unresolved": (timer_binding("%NOT_SET_ANYWHERE%"), MARKING_SOURCE),
        "bad_schedule": (timer_binding("0 0 * * * 7"), MARKING_SOURCE),
        "switched_off": (timer_binding("*/1 * * * * *"), TIMER_SOURCE),
    }
    write_app(root, {"version": "2.0"}, {"Values": {"AzureWebJobs.switched_off.Disabled": "1"}}, functions)
    timer_app = TimerApp(root)
    # A status recorded by an earlier run: the occurrence after Last was due 5 minutes ago.
    now = datetime.now().astimezone().replace(second=0, microsecond=0)
    last = now - timedelta(minutes=10 + now.minute % 5)
    status = ScheduleStatus(last, last + timedelta(minutes=5), last)
    path = timer_app.status_path("pastdue")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(status.to_json()))
    timer_app.start({"TIMER_SCHEDULE": "*/2 * * * * *"})
    wait_until(
        lambda: len(timer_app.records("every", "end")) >= 3, 20, "three runs of the every-second timer"
    )
    yield timer_app
    if timer_app.process is not None:
        assert timer_app.stop() == 0


class TestTimerTrigger:
    """What timer-triggered functions see, and when they run."""

    def test_runs_every_second_never_twice_at_once(self, app: TimerApp) -> None:
        """An overrunning run is followed at once by one more; the occurrences it covered are skipped."""
        starts = app.records("every")
        ends = app.records("every", "end")
        assert max(record["running"] for record in starts) == 1
        for ended, following in zip(ends, starts[1:], strict=False):
            assert following["at"] >= ended["at"]  # never before the previous one ended
            assert following["at"] - ended["at"] < 0.9  # and at once: it was already due
        assert all(not record["past_due"] for record in starts)
        assert starts[0]["schedule_status"] == {}  # a sub-minute schedule has no monitor

    def test_schedule_from_an_app_setting(self, app: TimerApp) -> None:
        """%TIMER_SCHEDULE% resolves to */2 * * * * * (logged), and the function runs."""
        assert "from_setting: timerTrigger Cron: '*/2 * * * * *'" in app.log
        wait_until(lambda: app.records("from_setting"), 10, "the from_setting timer")

    def test_unresolved_setting_and_bad_schedule_are_in_error(self, app: TimerApp) -> None:
        """As the host indexes them: logged, never imported, never run."""
        assert (
            "The 'unresolved' function is in error: '%NOT_SET_ANYWHERE%' does not resolve to a value."
            in app.log
        )
        assert (
            "The 'bad_schedule' function is in error: The schedule expression '0 0 * * * 7' was not "
            "recognized as a valid cron expression or timespan string." in app.log
        )
        assert not (app.root / "imported").exists()

    def test_run_on_startup(self, app: TimerApp) -> None:
        """A yearly schedule with runOnStartup runs once at start, not past due."""
        records = wait_until(lambda: app.records("startup"), 10, "the startup timer")
        assert len(records) == 1
        assert records[0]["past_due"] is False
        assert "Function 'startup' is configured to run on startup. Executing now." in app.log

    def test_past_due_on_start(self, app: TimerApp) -> None:
        """The recorded Next had passed: one immediate run with past_due, and the status moves on."""
        records = wait_until(lambda: app.records("pastdue"), 10, "the past-due timer")
        assert len(records) == 1
        assert records[0]["past_due"] is True
        assert set(records[0]["schedule_status"]) == {"Last", "Next", "LastUpdated"}
        wait_until(lambda: app.records("pastdue", "end"), 5, "the past-due run to end")
        status = ScheduleStatus.from_json(json.loads(app.status_path("pastdue").read_text()))
        assert status.next > datetime.now().astimezone()
        assert "Function 'pastdue' is past due on startup. Executing now." in app.log

    def test_disabled_by_app_setting(self, app: TimerApp) -> None:
        """AzureWebJobs.<name>.Disabled=1: loaded, but its timer never starts."""
        assert "Function 'switched_off' is disabled" in app.log
        assert app.records("switched_off") == []

    def test_sigterm_waits_for_the_invocation_in_flight(self, app: TimerApp) -> None:
        """On SIGTERM the timers stop; a run in progress ends before the host exits 0."""
        wait_until(lambda: len(app.records("every")) > len(app.records("every", "end")), 5, "a run in flight")
        assert app.stop() == 0
        assert len(app.records("every")) == len(app.records("every", "end"))


class TestNcrontab:
    """NCrontab's parsing and next occurrences, without a host."""

    @pytest.mark.parametrize(
        ("expression", "field", "values"),
        [
            ("*/20 * * * * *", "seconds", [0, 20, 40]),
            ("0 5-1 * * * *", "minutes", [1, 2, 3, 4, 5]),  # reversed ranges are swapped
            ("0 0 1-10/3,20 * * *", "hours", [1, 4, 7, 10, 20]),
            ("0 0 0 25/3 * *", "days", [25, 28, 31]),
            ("0 0 0 * JAN-mar,Dec *", "months", [1, 2, 3, 12]),
            ("0 0 0 * * mon,W,friday", "days_of_week", [1, 3, 5]),
            ("0 0 0 * * SUN-SAT/2", "days_of_week", [0, 2, 4, 6]),
        ],
    )
    def test_fields(self, expression: str, field: str, values: list[int]) -> None:
        """Ranges, lists, steps, names (any case, any prefix)."""
        schedule = CrontabSchedule.parse(expression)
        assert sorted(getattr(schedule, field).values) == values

    @pytest.mark.parametrize(
        "expression",
        ["0 0 0 * * 7", "60 * * * * *", "* * * * *  * *", "0 0 0 0 * *", "0 0 0 * FOO *", "*/x * * * * *"],
    )
    def test_refused(self, expression: str) -> None:
        """Out-of-range values (Sunday is 0, never 7), unknown names, wrong field counts."""
        with pytest.raises(CrontabError):
            CrontabSchedule.parse(expression)

    @pytest.mark.parametrize(
        ("expression", "base", "expected"),
        [
            ("*/15 * * * * *", datetime(2024, 1, 1, 10, 0, 0), datetime(2024, 1, 1, 10, 0, 15)),
            ("0 0 12 * * 1-5", datetime(2024, 6, 7, 12, 0, 0), datetime(2024, 6, 10, 12, 0, 0)),
            ("0 0 0 13 * FRI", datetime(2024, 1, 1), datetime(2024, 9, 13)),  # both day fields must match
            ("0 0 0 31 * *", datetime(2024, 4, 1), datetime(2024, 5, 31)),  # April has no 31st
            ("0 0 0 29 2 *", datetime(2025, 1, 1), datetime(2028, 2, 29)),  # the next leap year
            ("0 0 0 29 2 MON", datetime(2025, 1, 1), datetime(2044, 2, 29)),
            (
                "0 30 23 L * *".replace("L", "28-31"),
                datetime(2023, 2, 28, 23, 30),
                datetime(2023, 3, 28, 23, 30),
            ),
            ("0 0 0 1 1 *", datetime(2024, 12, 31, 23, 59, 59), datetime(2025, 1, 1)),
        ],
    )
    def test_next_occurrence(self, expression: str, base: datetime, expected: datetime) -> None:
        """The first occurrence strictly after the base time."""
        assert CrontabSchedule.parse(expression).next_occurrence(base) == expected

    def test_never(self) -> None:
        """February 30th never comes: no occurrence, found without hanging."""
        assert CrontabSchedule.parse("0 0 0 30 2 *").next_occurrence(datetime(2024, 1, 1)) is None

    def test_five_fields_have_no_seconds(self) -> None:
        """As CronSchedule.HasSeconds: exactly five fields are minutes to day of week."""
        schedule = parse_schedule("*/5 * * * *")
        assert isinstance(schedule, CronSchedule)
        assert schedule.crontab.next_occurrence(datetime(2024, 1, 1, 0, 1, 30)) == datetime(2024, 1, 1, 0, 5)


class TestSchedules:
    """TimerSchedule.Create and the binding's settings, without a host."""

    @pytest.mark.parametrize(
        ("expression", "interval"),
        [
            ("00:05:00", timedelta(minutes=5)),
            ("1", timedelta(days=1)),
            ("1.02:00:00.5", timedelta(days=1, hours=2, milliseconds=500)),
        ],
    )
    def test_timespans(self, expression: str, interval: timedelta) -> None:
        """Not NCRONTAB: a .NET TimeSpan is a constant interval."""
        assert parse_schedule(expression) == ConstantSchedule(interval)

    @pytest.mark.parametrize("expression", ["24:00:00", "00:60:00", "every minute", ""])
    def test_neither(self, expression: str) -> None:
        """Neither NCRONTAB nor a TimeSpan: the host's message."""
        with pytest.raises(
            FunctionIndexingError, match="was not recognized as a valid cron expression or timespan"
        ):
            parse_schedule(expression)

    def test_setting_resolution(self) -> None:
        """%NAME% resolves from the app settings; an undefined one is the host's error."""
        trigger = TimerTrigger.from_binding("f", {"schedule": "0 %MINUTE% * * * *"}, {"MINUTE": "15"})
        assert isinstance(trigger.schedule, CronSchedule)
        assert trigger.schedule.crontab.expression == "0 15 * * * *"
        with pytest.raises(FunctionIndexingError, match=r"^'%MISSING%' does not resolve to a value\.$"):
            TimerTrigger.from_binding("f", {"schedule": "%MISSING%"}, {})

    def test_monitor_off_for_sub_minute_schedules(self) -> None:
        """ShouldDisableScheduleMonitor: more than one occurrence a minute, or a constant under a minute."""
        now = datetime(2024, 1, 1).astimezone()
        assert not TimerTrigger.from_binding("f", {"schedule": "*/10 * * * * *"}, {}, now).use_monitor
        assert not TimerTrigger.from_binding("f", {"schedule": "00:00:30"}, {}, now).use_monitor
        assert TimerTrigger.from_binding("f", {"schedule": "0 * * * * *"}, {}, now).use_monitor
        assert not TimerTrigger.from_binding(
            "f", {"schedule": "0 * * * * *", "useMonitor": False}, {}, now
        ).use_monitor
        assert TimerTrigger.from_binding(
            "f", {"schedule": "0 * * * * *", "runOnStartup": "true"}, {}
        ).run_on_startup

    def test_past_due_check(self, tmp_path: Path) -> None:
        """CheckPastDueAsync: past due only when the recorded Next has passed; a changed schedule resets."""
        monitor = ScheduleMonitor(tmp_path, "host")
        schedule = parse_schedule("0 0 * * * *")
        now = datetime(2024, 5, 1, 12, 30).astimezone()
        first, status = monitor.check_past_due("t", now, schedule, None)
        assert first == timedelta(0)
        assert status.next == datetime(2024, 5, 1, 13).astimezone()
        late, _ = monitor.check_past_due("t", now + timedelta(hours=2), schedule, monitor.get_status("t"))
        assert late == timedelta(hours=1, minutes=30)
        changed = ScheduleStatus(None, datetime(2024, 5, 1, 12, 45).astimezone(), now)  # not on this schedule
        late, reset = monitor.check_past_due("t", now + timedelta(hours=2), schedule, changed)
        assert late == timedelta(0)
        assert reset.next == datetime(2024, 5, 1, 15).astimezone()

    def test_host_id(self) -> None:
        """Utility.GetStableHash and the local host id: letters and digits, a hash, 32 at most."""
        assert stable_hash("abc") == 781547
        assert stable_hash("x" * 20) == stable_hash("x" * 20)
        identifier = host_id(Path("/some/app"), {})
        assert identifier == identifier.lower()
        assert len(identifier) <= 32
        assert host_id(Path("/some/app"), {"AzureFunctionsWebHost__hostid": "mine"}) == "mine"

    @pytest.mark.skipif(not hasattr(time, "tzset"), reason="needs time.tzset")
    def test_daylight_saving(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A skipped local time moves forward; an ambiguous one is read in standard time (as .NET does)."""
        monkeypatch.setenv("TZ", "America/Los_Angeles")
        time.tzset()
        try:
            schedule = parse_schedule("0 30 2 * * *")
            assert isinstance(schedule, CronSchedule)
            spring = schedule.next_occurrence(datetime(2024, 3, 10, 0, 0).astimezone())
            assert spring.timestamp() == datetime.fromisoformat("2024-03-10T10:30:00+00:00").timestamp()
            fall = parse_schedule("0 30 1 * * *").next_occurrence(datetime(2024, 11, 3, 0, 0).astimezone())
            assert fall.timestamp() == datetime.fromisoformat("2024-11-03T09:30:00+00:00").timestamp()
        finally:
            monkeypatch.undo()
            time.tzset()
        assert os.environ.get("TZ") != "America/Los_Angeles"
