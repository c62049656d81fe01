"""The bench's timers: samples and their spread, timing one thing or several interleaved, CPU and memory.

Times are medians with the interquartile range; where machines differ, the
figure that matters is a ratio of two things measured in the same run.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """Durations of one thing, in seconds."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self) -> str:
        quartiles = statistics.quantiles(self.values, n=4)
        return f"{ms(self.median)} (IQR {ms(quartiles[0])}-{ms(quartiles[2])}, n={len(self.values)})"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def timed(action: Callable[[], object], count: int, *, warmup: int = 3) -> Sample:
    for _ in range(warmup):
        action()
    values = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        values.append(time.perf_counter() - started)
    return Sample(values)


def interleaved(
    actions: dict[str, Callable[[], object]], count: int, *, warmup: int = 3
) -> dict[str, Sample]:
    """Time several things round-robin, so that drift in the machine's speed hits all alike."""
    for _ in range(warmup):
        for action in actions.values():
            action()
    values: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(count):
        for name, action in actions.items():
            started = time.perf_counter()
            action()
            values[name].append(time.perf_counter() - started)
    return {name: Sample(series) for name, series in values.items()}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kib(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a process in KiB (``VmRSS``, ``VmHWM``...), by /proc; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def bootstrap_ratio(first: list[float], second: list[float], rounds: int = 2_000) -> tuple[float, float]:
    """A bootstrap 95 % interval of median(first) / median(second)."""
    draw = random.Random(21)  # noqa: S311 - resampling, not a secret
    ratios = sorted(
        statistics.median(draw.choices(first, k=len(first)))
        / statistics.median(draw.choices(second, k=len(second)))
        for _ in range(rounds)
    )
    return ratios[int(rounds * 0.025)], ratios[int(rounds * 0.975) - 1]
