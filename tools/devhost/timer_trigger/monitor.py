"""The schedule status a timer keeps across restarts (``ScheduleMonitor``), and the host id.

``Scheduling/ScheduleMonitor.cs``, ``FileSystemScheduleMonitor.cs``,
``StorageScheduleMonitor.cs``, ``ScriptHostIdProvider.cs`` and ``Utility.GetStableHash``
(see the package's docstring).
"""

from __future__ import annotations

import json
import logging
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tools.devhost.app_settings import app_setting
from tools.devhost.timer_trigger.schedules import Schedule, local_now

logger = logging.getLogger("devhost.timer")

#: Where schedule statuses are kept (the host: the ``azure-webjobs-hosts`` blob container).
DEFAULT_STATE_DIRECTORY = Path(tempfile.gettempdir()) / "devhost-storage" / "azure-webjobs-hosts"


#: ``ConfigurationSectionNames.HostIdPath``: an explicit host id.
HOST_ID_SETTING = "AzureFunctionsWebHost:hostid"
#: ``ScriptConstants.MaximumHostIdLength``.
MAXIMUM_HOST_ID_LENGTH = 32


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
