"""One function run on its schedule, as ``Listener/TimerListener.cs`` runs it.

See the package's docstring for what it does on start, between occurrences and on stop.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest

from tools.devhost.timer_trigger.monitor import ScheduleMonitor, ScheduleStatus
from tools.devhost.timer_trigger.schedules import ConstantSchedule, CronSchedule, local_now, next_occurrences
from tools.devhost.timer_trigger.trigger import TimerFunction

logger = logging.getLogger("devhost.timer")


#: ``System.Timers.Timer`` takes at most ~24.8 days; the listener waits in steps of 24 (``MaxTimerInterval``).
MAX_TIMER_INTERVAL = timedelta(days=24)


#: The smallest timer interval (``GetNextTimerInterval``: one tick).
ONE_TICK = timedelta(microseconds=1)


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
