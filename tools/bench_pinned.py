"""The concurrency figure with the host alone on one core, for ``make bench``.

Unpinned, the local host, Azurite and the load-generating clients share the
machine's cores, so logins per second measure their contention as much as the
service's overhead. Here the host runs on one core and Azurite and the clients
on another, and the rate is compared with the hash-bound limit of that one
core (one Argon2id verification at a time), measured on that core in the same
run. Every thread of a process is pinned (Linux keeps affinity per thread, and
threads started later inherit their creator's).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tools.azurite import Azurite

if TYPE_CHECKING:
    from tools.bench import Report

#: The pinned rate must reach this share of the one-core limit with 2 to 8 clients.
TARGET_SHARE = 0.90
CLIENT_COUNTS = (1, 2, 4, 8)


def pin_process(pid: int, cores: set[int]) -> None:
    """Pin every thread of process ``pid`` (and of its children) to ``cores``."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cores)
        children = task / "children"
        if children.exists():
            for child in children.read_text().split():
                pin_process(int(child), cores)


@contextmanager
def this_thread_on(cores: set[int]) -> Iterator[None]:
    """Run this thread (and the threads it starts meanwhile) on ``cores``; restore its affinity after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def verify_seconds_on(core: int, verify: Callable[[], object], samples: int) -> float:
    """Median time of one Argon2id verification on ``core`` alone."""
    from tools.bench import timed  # noqa: PLC0415 - bench imports this module

    with this_thread_on({core}):
        return timed(verify, samples, warmup=1).median


def pinned_concurrency(
    verify: Callable[[], object],
    unpinned_shares: dict[int, float],
    report: Report,
    *,
    duration: float,
    samples: int,
) -> None:
    """Figure 5b: logins/s with the host alone on one core, against that core's hash-bound limit.

    ``verify`` is one Argon2id verification of the bench's login password;
    ``unpinned_shares`` are figure 5's shares of the all-core limit.
    """
    from tools.bench import App, cpu_seconds, logins_per_second  # noqa: PLC0415 - bench imports this module

    cores = sorted(os.sched_getaffinity(0))
    report.table(
        "5b. Concurrency, pinned",
        "The same load with the local host pinned to one core and Azurite and the clients to another, "
        "against the hash-bound limit of the host's core (1 / Argon2id verify time on that core, measured "
        "there in this run). Beside each, figure 5's unpinned share of the all-core limit.",
    )
    if len(cores) < 2:
        report.row("skipped", "this machine lets the bench use only one core")
        return
    host_core, other_core = cores[0], cores[1]
    one_core_verify = verify_seconds_on(host_core, verify, samples)
    limit = 1 / one_core_verify
    measured = []
    with Azurite() as azurite, tempfile.TemporaryDirectory() as folder:
        pin_process(azurite.pid, {other_core})
        app = App(azurite, Path(folder))
        try:
            pin_process(app.process.pid, {host_core})
            with this_thread_on({other_core}):
                app.register("login@example.com")
                for clients in CLIENT_COUNTS:
                    host_cpu = cpu_seconds(app.process.pid)
                    started = time.perf_counter()
                    rate, _ = logins_per_second(app, clients, duration)
                    logins = rate * (
                        time.perf_counter() - started
                    )  # warm-up included, at about the same rate
                    measured.append((clients, rate, (cpu_seconds(app.process.pid) - host_cpu) / logins))
        finally:
            app.stop()
    report.row(
        "one-core limit",
        f"{limit:.1f}/s (Argon2id verify on core {host_core}: {one_core_verify * 1e3:.2f} ms)",
    )
    for clients, rate, host_cpu_per_login in measured:
        share = rate / limit
        unpinned = unpinned_shares.get(clients)
        beside = f"; unpinned: {unpinned:.2f} of the all-core limit" if unpinned is not None else ""
        report.row(
            f"{clients} client{'s' * (clients > 1)}, pinned",
            f"{rate:.1f}/s ({share:.2f} of the one-core limit{beside}; host CPU "
            f"{host_cpu_per_login * 1e3:.1f} ms per login)",
            f"≥ {TARGET_SHARE:.2f} of the one-core limit" if clients >= 2 else "",
            share >= TARGET_SHARE if clients >= 2 else None,
        )
