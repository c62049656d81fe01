"""Figures 5, 5c and 8: logins per second as clients are added, the gate's CPU, and the host's memory.

Figure 5b (the same load with the host pinned to one core) is in :mod:`.pinned`.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.accounts.passwords import HASHING_SLOTS
from tools.bench.app import App, Client
from tools.bench.measuring import cpu_seconds, ms
from tools.bench.report import Report

#: The numbers of concurrent clients of figures 5 and 5b.
CLIENT_COUNTS = (1, 2, 4, 8)


@dataclass(frozen=True)
class Throughput:
    """Requests per second under a steady load, and where the CPU went, per request."""

    rate: float
    #: CPU seconds per request of the host process (all its threads).
    host_cpu: float
    #: CPU seconds per request of the co-located Azurite and of this process (the clients).
    neighbour_cpu: float
    #: CPU seconds per request the host spent in Argon2id (only for a host started with the meter).
    hash_cpu: float | None = None


def steady_load(app: App, clients: int, duration: float, request: Callable[[Client], object]) -> Throughput:
    """Throughput of ``clients`` threads each sending ``request`` back to back, after a second of warm-up.

    Each thread has a connection of its own. The client threads inherit the
    calling thread's CPU affinity. CPU times are read at the start and end of
    the measured window only; so is the host's Argon2id time, when it has the meter.
    """
    stop = threading.Event()
    counts = [0] * clients

    def client(index: int) -> None:
        connection = Client(app.port)
        while not stop.is_set():
            request(connection)
            counts[index] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    metered = app.meter_file is not None
    hashing = app.argon2_cpu()[0] if metered else 0.0
    start_count, started = sum(counts), time.perf_counter()
    host = cpu_seconds(app.process.pid)
    neighbours = cpu_seconds(app.azurite_pid) + time.process_time()
    time.sleep(duration)
    done, elapsed = sum(counts) - start_count, time.perf_counter() - started
    host = cpu_seconds(app.process.pid) - host
    neighbours = cpu_seconds(app.azurite_pid) + time.process_time() - neighbours
    hashing = app.argon2_cpu()[0] - hashing if metered else 0.0
    stop.set()
    for thread in threads:
        thread.join()
    requests = max(done, 1)
    return Throughput(
        done / elapsed, host / requests, neighbours / requests, hashing / requests if metered else None
    )


def logins_per_second(app: App, clients: int, duration: float) -> Throughput:
    """Throughput of ``clients`` threads each logging in back to back (see :func:`steady_load`)."""
    return steady_load(app, clients, duration, lambda connection: app.login("login@example.com", connection))


def gate_cost(app: App, duration: float, report: Report) -> None:
    """Figure 5c: the host's CPU per authenticated request (GET /api/me) under a steady load of 2 clients."""
    token = app.login("login@example.com")["token"]
    measured = steady_load(app, 2, duration, lambda connection: connection.get("me", token=token))
    floor = steady_load(
        app, 2, duration, lambda connection: connection.get("/.well-known/openid-configuration")
    )
    report.table(
        "5c. The gate",
        "GET /api/me (token check, one point read of the account row) from 2 clients back to back through "
        "the local host: the host's CPU per request over the measured window (HTTP server included). "
        "Below it, the same for GET /.well-known/openid-configuration, a function that reads no storage "
        "and checks no token: what the local host's HTTP server, routing and the worker package's "
        "invocation cost per request (on Azure the Functions host, a .NET process, does the HTTP part).",
    )
    report.row("gate, host CPU per request", f"{ms(measured.host_cpu)} ({measured.rate:.0f} requests/s)")
    report.row(
        "floor: a function with no storage and no token, host CPU per request",
        f"{ms(floor.host_cpu)} ({floor.rate:.0f} requests/s)",
    )


@dataclass(frozen=True)
class Concurrency:
    """What figure 5 measured: each client count's share of the all-core limit, and the host's memory."""

    shares: dict[int, float]
    idle_kib: int
    peak_kib: int


def concurrency(app: App, verify_seconds: float, duration: float, report: Report) -> Concurrency:
    """Figure 5: throughput with 1-8 clients, everything sharing all cores, against the all-core limit."""
    cores = os.cpu_count() or 1
    limit = cores / verify_seconds
    idle_kib = app.memory_kib("VmRSS")
    rows = [(clients, logins_per_second(app, clients, duration)) for clients in CLIENT_COUNTS]
    peak_kib = app.memory_kib("VmHWM")
    neighbour_cpu = statistics.median(measured.neighbour_cpu for _, measured in rows)
    adjusted = cores / (verify_seconds + neighbour_cpu)
    report.table(
        "5. Concurrency",
        f"Logins per second through the local host with N concurrent clients, against the hash-bound limit "
        f"(cores / Argon2id verify time = {cores} / {ms(verify_seconds)} = {limit:.1f}/s). Here the clients "
        f"and Azurite run on the same {cores} cores and spent {ms(neighbour_cpu)} of CPU per login between "
        f"them (measured); the limit left for the service is {cores} / ({ms(verify_seconds)} + "
        f"{ms(neighbour_cpu)}) = {adjusted:.1f}/s, shown second.",
    )
    for clients, measured in rows:
        share, adjusted_share = measured.rate / limit, measured.rate / adjusted
        label = f"{clients} client{'s' * (clients > 1)}"
        report.row(
            label,
            f"{measured.rate:.1f}/s ({share:.2f} of the limit; {adjusted_share:.2f} of what is left to "
            "the service)",
            "≥ 0.85 of the limit" if clients >= 4 else "",
            share >= 0.85 if clients >= 4 else None,
        )
    return Concurrency({clients: measured.rate / limit for clients, measured in rows}, idle_kib, peak_kib)


def memory(measured: Concurrency, report: Report) -> None:
    """Figure 8: the host's resident memory before and after figure 5's load."""
    threads = max(CLIENT_COUNTS)
    per_thread = (measured.peak_kib - measured.idle_kib) / 1024 / threads
    report.table(
        "8. Memory",
        "Resident memory of the local host process (the Python worker's equivalent) before and after "
        f"{threads} concurrent clients. At most {HASHING_SLOTS} Argon2 computations run at once "
        "(one per core), but glibc gives each request thread its own malloc arena, which keeps the "
        "Argon2 block after the computation: memory grows by the memory cost once per request thread "
        "that has hashed.",
    )
    report.row("idle, after warm-up", f"{measured.idle_kib / 1024:.1f} MiB")
    report.row(f"peak under {threads} concurrent logins", f"{measured.peak_kib / 1024:.1f} MiB")
    report.row("per request thread", f"{per_thread:.1f} MiB (Argon2 memory cost: 19 MiB)")
