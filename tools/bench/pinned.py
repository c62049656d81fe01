"""The concurrency figure with the host alone on one core, for ``make bench``.

Unpinned, the local host, Azurite and the load-generating clients share the
machine's cores, so logins per second measure their contention as much as the
service's overhead. Here the host runs on one core and Azurite and the clients
on another, and the rate is compared with the hash-bound limit of that one
core (one Argon2id verification at a time), measured on that core in the same
run. Linux keeps affinity per thread, and threads started later inherit their
creator's: the host and Azurite are pinned as they start (``cpus``), before
they start any thread, and the client threads inherit the bench thread's.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.bench.app import App
from tools.bench.concurrency import CLIENT_COUNTS, logins_per_second
from tools.bench.measuring import Sample, ms, timed
from tools.bench.report import Report
from tools.emulators.azurite import Azurite

#: The pinned rate must reach this share of the one-core limit with 2 to 8 clients.
TARGET_SHARE = 0.90
#: Host CPU per login beyond the Argon2id verify (seconds).
TARGET_BEYOND_HASH = 0.003


@contextmanager
def this_thread_on(cores: set[int]) -> Iterator[None]:
    """Run this thread (and the threads it starts meanwhile) on ``cores``; restore its affinity after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def verify_on(core: int, verify: Callable[[], object], samples: int) -> Sample:
    """Times of one Argon2id verification in this thread, on ``core`` alone."""
    with this_thread_on({core}):
        return timed(verify, samples, warmup=1)


def verify_cpu_on(core: int, verify: Callable[[], object], samples: int) -> float:
    """The median CPU time (this thread's clock) of one Argon2id verification on ``core``.

    Unlike the wall time, it does not grow when other work shares the core, so it
    is what the host's CPU per login is compared with.
    """
    times = []
    with this_thread_on({core}):
        verify()
        for _ in range(samples):
            started = time.thread_time()
            verify()
            times.append(time.thread_time() - started)
    return statistics.median(times)


def ceiling(verify_seconds: float, host_cpu: float) -> str:
    """The share of the one-core limit the host reaches with its core always busy (verify / CPU per login)."""
    return f"{verify_seconds / host_cpu:.2f}" if host_cpu > 0 else "n/a"


def pinned_concurrency(
    verify: Callable[[], object],
    unpinned_shares: dict[int, float],
    report: Report,
    *,
    duration: float,
    samples: int,
) -> None:
    """Figure 5b: logins/s with the host alone on one core, against that core's hash-bound limit.

    The host and Azurite are pinned as they start (every thread they start
    inherits it); the client threads inherit this thread's affinity, set for
    the load and restored after. The one-core limit is 1 / the median time of
    ``verify`` (one Argon2id verification of the bench's login password) in this
    thread on the host's core, with the pinned host idle: half the samples
    before the load, half after, so drift during the run shows. ``unpinned_shares``
    are figure 5's shares of the all-core limit.
    """
    cores = sorted(os.sched_getaffinity(0))
    report.table(
        "5b. Concurrency, pinned",
        "The same load with the local host pinned to one core and Azurite and the clients to another, "
        "against the hash-bound limit of the host's core (1 / Argon2id verify time on that core, measured "
        "there in this run, with the host idle). Beside each, figure 5's unpinned share of the all-core "
        "limit; then the CPU per login of the host and how busy that keeps its core, and the same for "
        "Azurite with the clients on theirs. Other work on the machine is not pinned away from either core.",
    )
    if len(cores) < 2:
        report.row("skipped", f"the bench may use only {len(cores)} core here; pinning apart needs two")
        return
    host_core, other_core = cores[0], cores[1]
    half = max(3, samples // 2)
    with (
        Azurite(cpus={other_core}) as azurite,
        tempfile.TemporaryDirectory() as folder,
        this_thread_on({other_core}),
    ):
        app = App(azurite, Path(folder), cpus={host_core}, argon2_meter=True)
        try:
            app.register("login@example.com")
            before = verify_on(host_core, verify, half)
            measured = [(clients, logins_per_second(app, clients, duration)) for clients in CLIENT_COUNTS]
            after = verify_on(host_core, verify, half)
            verify_cpu = verify_cpu_on(host_core, verify, half)
        finally:
            app.stop()
    one_core = Sample(before.values + after.values)
    limit = 1 / one_core.median
    report.row(
        "one-core limit",
        f"{limit:.1f}/s (Argon2id verify on core {host_core}: {one_core.spread()}; median before the "
        f"load {ms(before.median)}, after {ms(after.median)})",
    )
    for clients, throughput in measured:
        share = throughput.rate / limit
        unpinned = unpinned_shares.get(clients)
        beside = f"; unpinned: {unpinned:.2f} of the all-core limit" if unpinned is not None else ""
        report.row(
            f"{clients} client{'s' * (clients > 1)}, pinned",
            f"{throughput.rate:.1f}/s ({share:.2f} of the one-core limit{beside}; host CPU "
            f"{ms(throughput.host_cpu)} per login, {ms(throughput.hash_cpu or 0.0)} of it in Argon2id "
            f"(ceiling {ceiling(one_core.median, throughput.host_cpu)}), "
            f"its core {throughput.host_cpu * throughput.rate:.0%} busy; Azurite and clients "
            f"{ms(throughput.neighbour_cpu)}, their core "
            f"{throughput.neighbour_cpu * throughput.rate:.0%} busy)",
            f"≥ {TARGET_SHARE:.2f} of the one-core limit" if clients >= 2 else "",
            share >= TARGET_SHARE if clients >= 2 else None,
        )
    loaded = [throughput for clients, throughput in measured if clients >= 2]
    host_cpu = statistics.median(throughput.host_cpu for throughput in loaded)
    beyond = statistics.median(throughput.host_cpu - (throughput.hash_cpu or 0.0) for throughput in loaded)
    report.row(
        "**host CPU per login beyond Argon2id** (median over 2-8 clients, pinned)",
        f"{ms(beyond)} (the host's CPU per login less what its own Argon2id work took, both on the CPU "
        "clock)",
        f"≤ {ms(TARGET_BEYOND_HASH)}",
        beyond <= TARGET_BEYOND_HASH,
    )
    report.row(
        "the same, less a bare verify instead (the figure before the host was metered)",
        f"{ms(host_cpu - verify_cpu)} ({ms(host_cpu)} of host CPU per login less {ms(verify_cpu)} of CPU per "
        "bare verify on the host's core)",
    )
    report.text(
        "The ceiling is the most the host could reach with its core always busy: the Argon2id verify time "
        f"over its CPU per login. CPU beyond the verify ({ms(one_core.median)}) is the service's overhead "
        "(HTTP, JSON, the storage client, the token). The host sizes its Argon2 slots by the cores it "
        "may run on, so pinned to one core it runs one verification at a time. The host times its own "
        "Argon2id work (a bench instrument, `tools/bench/meter`, on each thread's CPU clock): one "
        "verification timed apart, in the bench's thread, varies by 10-20 % from run to run on this "
        "machine, as much as the whole overhead, and costs more under load than alone."
    )
