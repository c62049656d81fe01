"""``host.json`` ``extensions.queues`` with the Storage Queues extension's defaults.

``QueuesOptions.cs``, ``SkuUtility.cs``, ``QueuePollingIntervals.cs`` and
``StorageQueuesWebJobsBuilderExtensions.cs`` (see the package's docstring).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: ``QueuePollingIntervals.Minimum``: the shortest delay between polls of an empty queue.
MINIMUM_POLLING_INTERVAL = 0.1
#: ``QueuePollingIntervals.DefaultMaximum``.
DEFAULT_MAX_POLLING_INTERVAL = 60.0
#: What ``AddAzureStorageQueues`` makes of the default in the Development environment.
DEVELOPMENT_MAX_POLLING_INTERVAL = 2.0
#: ``QueuesOptions.MaxBatchSize``: the Queue service returns at most 32 messages a request.
MAX_BATCH_SIZE = 32


_TIMESPAN = re.compile(r"^\s*(?:(\d+)\.)?(\d+):(\d+)(?::(\d+)(?:\.(\d{1,7}))?)?\s*$")


def parse_timespan(value: object) -> float:
    """Seconds in a ``host.json`` interval: a .NET TimeSpan string or a number of milliseconds.

    ``"hh:mm"``, ``"hh:mm:ss"``, ``"hh:mm:ss.fffffff"`` and ``"d.hh:mm:ss"`` read as .NET's
    ``TimeSpan.Parse`` reads them. A JSON number, or a string of digits only, is milliseconds, as
    Functions 1.x read ``maxPollingInterval``. (The 4.x host's configuration binder would read a
    bare integer string as a number of *days*; milliseconds are kinder to a local host.)

    :raises ValueError: anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not an interval: {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000
    text = str(value).strip()
    if text.isdigit():
        return int(text) / 1000
    found = _TIMESPAN.fullmatch(text)
    if found is None:
        raise ValueError(f"not an interval: {value!r}")
    days, hours, minutes, seconds, fraction = found.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return total + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def processor_count(environ: Mapping[str, str]) -> int:
    """``SkuUtility.ProcessorCount``: 1 on the Consumption plan, else the machine's processors."""
    if (environ.get("WEBSITE_SKU") or "").lower() == "dynamic":
        return 1
    return os.cpu_count() or 1


@dataclass(frozen=True)
class QueuesOptions:
    """``host.json`` ``extensions.queues``, with the Storage Queues extension's defaults.

    Times are in seconds. ``new_batch_threshold`` is resolved: unset, it is
    ``batchSize // 2 * processors`` (``QueuesOptions.NewBatchThreshold``).
    """

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = DEFAULT_MAX_POLLING_INTERVAL
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @property
    def max_concurrency(self) -> int:
        """The most invocations in flight at once: ``batchSize + newBatchThreshold``."""
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_settings(cls, section: Mapping[str, Any], environ: Mapping[str, str]) -> QueuesOptions:
        """Read a ``queues`` section (keys compared case-insensitively, as configuration does).

        ``environ`` gives the Development environment rule (``AZURE_FUNCTIONS_ENVIRONMENT``,
        which ``func start`` sets to ``Development`` unless it is set) and the processor count.

        :raises ValueError: a value the extension's options would reject, with its message.
        """
        values = {key.lower(): value for key, value in section.items()}
        batch_size = int(values.get("batchsize", 16))
        if not 0 < batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"queues.batchSize must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
        threshold = values.get("newbatchthreshold")
        new_batch_threshold = (
            batch_size // 2 * processor_count(environ) if threshold is None else int(threshold)
        )
        if new_batch_threshold < 0:
            raise ValueError("queues.newBatchThreshold must not be negative")
        max_polling_interval = parse_timespan(values.get("maxpollinginterval", "00:01:00"))
        if max_polling_interval < MINIMUM_POLLING_INTERVAL:
            raise ValueError("MaxPollingInterval must not be less than 00:00:00.1000000.")
        environment = environ.get("AZURE_FUNCTIONS_ENVIRONMENT") or "Development"
        if environment.lower() == "development" and max_polling_interval == DEFAULT_MAX_POLLING_INTERVAL:
            max_polling_interval = DEVELOPMENT_MAX_POLLING_INTERVAL
        max_dequeue_count = int(values.get("maxdequeuecount", 5))
        if max_dequeue_count < 1:
            raise ValueError("MaxDequeueCount must not be less than 1.")
        encoding = str(values.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"queues.messageEncoding must be base64 or none, not {encoding!r}")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=new_batch_threshold,
            max_polling_interval=max_polling_interval,
            visibility_timeout=parse_timespan(values.get("visibilitytimeout", "00:00:00")),
            max_dequeue_count=max_dequeue_count,
            message_encoding=encoding,
        )
