"""Every timer-triggered function of the app: one listener a function, one schedule monitor."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from tools.devhost.timer_trigger.listener import TimerListener
from tools.devhost.timer_trigger.monitor import DEFAULT_STATE_DIRECTORY, ScheduleMonitor, host_id
from tools.devhost.timer_trigger.trigger import TimerFunction


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
