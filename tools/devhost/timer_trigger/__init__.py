"""Timer-triggered functions for the local host, run the way the Functions host runs them.

The Functions host runs ``timerTrigger`` bindings with the timers of
Microsoft.Azure.WebJobs.Extensions (Azure/azure-webjobs-sdk-extensions,
``src/WebJobs.Extensions/Extensions/Timers/``), which parse schedules with
NCrontab (atifaziz/NCrontab). This package follows their source:

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
  path under a local folder (:data:`.monitor.DEFAULT_STATE_DIRECTORY`);
- ``TimerInfo.cs`` and ``azure.functions.timer.TimerRequestConverter``: the
  function gets a ``TimerRequest`` with ``past_due``, ``schedule_status``
  (empty without a monitor) and ``schedule``;
- ``src/WebJobs.Script/Host/ScriptHostIdProvider.cs`` and ``Utility.GetStableHash``
  in Azure/azure-functions-host: the local host id.

Not reproduced: the singleton blob lease that keeps one listener per function
across instances, and the host's extra adjustments of occurrences near daylight
saving changes (``CronSchedule.TryAdjustAmbiguousTime``).

The modules: :mod:`.ncrontab` (NCRONTAB expressions), :mod:`.schedules` (a schedule:
NCRONTAB on the local clock, or a TimeSpan), :mod:`.trigger` (a ``timerTrigger`` binding),
:mod:`.monitor` (the schedule status kept across restarts), :mod:`.listener` (one
function's timer) and :mod:`.host` (every timer-triggered function of the app).
"""

from tools.devhost.timer_trigger.host import TimerHost
from tools.devhost.timer_trigger.listener import TimerListener
from tools.devhost.timer_trigger.monitor import ScheduleMonitor, ScheduleStatus, host_id, stable_hash
from tools.devhost.timer_trigger.ncrontab import CrontabError, CrontabSchedule
from tools.devhost.timer_trigger.schedules import (
    ConstantSchedule,
    CronSchedule,
    localize,
    parse_schedule,
    parse_timespan,
)
from tools.devhost.timer_trigger.trigger import TimerFunction, TimerTrigger

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
    "stable_hash",
]
