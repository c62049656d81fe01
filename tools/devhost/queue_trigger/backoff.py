"""The delay before the next poll of a queue (``RandomizedExponentialBackoffStrategy.cs``)."""

from __future__ import annotations

import random
from collections.abc import Callable


class RandomizedExponentialBackoff:
    """``RandomizedExponentialBackoffStrategy``: the delay before the next poll of a queue.

    Each call without success since the last one grows the delay from
    ``minimum`` by ``delta * 2**(n-1)`` randomized by ±20 %, up to ``maximum``,
    where it stays; a call after success goes back to ``minimum``.
    """

    RANDOMIZATION_FACTOR = 0.2

    def __init__(
        self,
        minimum: float,
        maximum: float,
        delta: float | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if minimum < 0 or maximum < 0:
            raise ValueError("intervals must not be negative")
        if minimum > maximum:
            raise ValueError("the minimum interval must not be greater than the maximum interval")
        self.minimum = minimum
        self.maximum = maximum
        self.delta = minimum if delta is None else delta
        self._rng = rng
        self._current = 0.0
        self._exponent = 0

    def next_delay(self, execution_succeeded: bool) -> float:
        """The delay after a poll; ``execution_succeeded``: a message was found since the last one."""
        if execution_succeeded:
            self._current = self.minimum
            self._exponent = 1
        elif self._current != self.maximum:
            interval = self.minimum
            if self._exponent > 0:
                factor = 1 - self.RANDOMIZATION_FACTOR + 2 * self.RANDOMIZATION_FACTOR * self._rng()
                interval += factor * 2 ** (self._exponent - 1) * self.delta
            if interval < self.maximum:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current
