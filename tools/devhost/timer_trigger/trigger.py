"""A function folder's ``timerTrigger`` binding, resolved as the host indexes it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest

from tools.devhost.app_settings import FunctionIndexingError, resolve_setting_tokens
from tools.devhost.functions import ListenedFunction
from tools.devhost.timer_trigger.schedules import ConstantSchedule, CronSchedule, local_now, parse_schedule

logger = logging.getLogger("devhost.timer")


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


#: A timer-triggered function, ready to be called.
TimerFunction = ListenedFunction[TimerTrigger, TimerRequest]
