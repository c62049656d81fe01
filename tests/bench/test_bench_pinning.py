"""Children started with ``cpus`` run pinned, every thread of them, from the start."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tools.bench.pinned import this_thread_on
from tools.devhost import host as devhost
from tools.emulators.azurite import Azurite, free_port

pytestmark = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning apart needs two CPUs")


def thread_affinities(pid: int) -> dict[int, set[int]]:
    """The CPUs each thread of ``pid`` may run on, by thread id."""
    affinities = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            affinities[int(task.name)] = os.sched_getaffinity(int(task.name))
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
    return affinities


def test_azurite_started_with_cpus_runs_every_thread_there() -> None:
    core = max(os.sched_getaffinity(0))
    with Azurite(cpus={core}) as azurite:
        affinities = thread_affinities(azurite.pid)
    assert len(affinities) > 1, "node runs worker threads besides the main one"
    assert set(map(frozenset, affinities.values())) == {frozenset({core})}


def test_azurite_without_cpus_keeps_the_parents_affinity() -> None:
    with Azurite() as azurite:
        assert os.sched_getaffinity(azurite.pid) == os.sched_getaffinity(0)


def test_devhost_spawned_with_cpus_runs_every_thread_there(tmp_path: Path) -> None:
    """The host's threads, including those started to serve a request, are on the one CPU."""
    core = min(os.sched_getaffinity(0))
    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": {}}))
    port = free_port()
    environment = devhost.app_environment({"AUTH_SIGNING_KEY": "00" * 32})
    process = devhost.spawn(
        port, settings, environment, cpus={core}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # A request starts a handler thread; it must inherit the pinning too.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
            connection.sendall(b"GET /api/nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(64).startswith(b"HTTP/1.")
            affinities = thread_affinities(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert len(affinities) > 1, "the request was served by a thread of its own"
    assert set(map(frozenset, affinities.values())) == {frozenset({core})}


def test_devhost_spawn_refuses_no_cpus(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one CPU"):
        devhost.spawn(free_port(), tmp_path / "settings.json", {}, cpus=set())


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_the_bench_thread_is_pinned_for_the_load_and_restored() -> None:
    before = os.sched_getaffinity(0)
    core = min(before)
    with this_thread_on({core}):
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
