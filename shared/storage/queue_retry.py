"""The mail queue's retry policy: short back-offs, and no retry once the call's budget is spent.

The Storage queue SDK's default (``ExponentialRetry``) waits 15 s, then 18 s,
between attempts: a queue that refuses connections held a request for ~45 s.
Imported only when the queue client is built (the queue SDK is a lazy import).
"""

from __future__ import annotations

import time
from typing import Any

from azure.storage.queue import LinearRetry

__all__ = ["BudgetedRetry"]

BACKOFF_SECONDS = 0.5
JITTER_SECONDS = 0.25


class BudgetedRetry(LinearRetry):
    """Linear back-off (0.25 to 0.75 s) that gives up when another attempt would pass ``budget`` seconds.

    An attempt under way when the budget runs out ends at its own connect or
    read timeout; no new attempt starts after it.
    """

    def __init__(self, budget: float, **kwargs: Any) -> None:
        super().__init__(backoff=BACKOFF_SECONDS, random_jitter_range=JITTER_SECONDS, **kwargs)  # type: ignore[arg-type]
        self.budget = budget

    def configure_retries(self, request: Any) -> dict[str, Any]:
        settings: dict[str, Any] = super().configure_retries(request)
        settings["deadline"] = time.monotonic() + self.budget
        return settings

    def increment(
        self, settings: dict[str, Any], request: Any, response: Any = None, error: Any = None
    ) -> bool:
        if time.monotonic() + BACKOFF_SECONDS + JITTER_SECONDS >= settings["deadline"]:
            return False
        retry: bool = super().increment(settings, request, response=response, error=error)
        return retry
