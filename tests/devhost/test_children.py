"""Children start the same however the suite was started, and do not outlive a parent killed outright."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from tools.children import preexec
from tools.emulators.azurite import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
#: A child that prints its own signal dispositions and mask, as the kernel keeps them.
READ_STATUS = [sys.executable, "-c", "print(open('/proc/self/status').read())"]


def signal_sets(status: str) -> dict[str, set[int]]:
    """The ignored and blocked signals a ``/proc/<pid>/status`` text shows."""
    found = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("SigIgn", "SigBlk"):
            mask = int(value.strip(), 16)
            found[name] = {bit + 1 for bit in range(64) if mask >> bit & 1}
    return found


@pytest.fixture
def sigint_ignored_and_sigterm_blocked() -> Iterator[None]:
    """This process as a background job of a script starts: SIGINT ignored (and a signal blocked)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_ignored_and_sigterm_blocked")
def test_a_child_starts_with_default_signals_whatever_it_inherits() -> None:
    """Without preexec the child inherits SIGINT ignored and SIGTERM blocked; with it, neither."""
    inherited = signal_sets(subprocess.run(READ_STATUS, check=True, capture_output=True, text=True).stdout)
    assert signal.SIGINT in inherited["SigIgn"], "the situation the suite must not depend on"
    assert signal.SIGTERM in inherited["SigBlk"]

    status = subprocess.run(
        READ_STATUS, check=True, capture_output=True, text=True, preexec_fn=preexec()
    ).stdout
    reset = signal_sets(status)
    assert signal.SIGINT not in reset["SigIgn"]
    assert reset["SigBlk"] == set()


def wait_until_gone(pids: list[int], timeout: float) -> set[int]:
    """Wait (on the processes themselves, through pidfds) until each has exited; return those still there."""
    descriptors: dict[int, int] = {}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # gone already
            descriptors[os.pidfd_open(pid)] = pid
    try:
        waiting = set(descriptors)
        while waiting:
            ready, _, _ = select.select(list(waiting), [], [], timeout)
            if not ready:
                break
            waiting -= set(ready)
        return {descriptors[fd] for fd in waiting}
    finally:
        for fd in descriptors:
            os.close(fd)


def test_the_watchdog_stops_what_a_killed_parent_registered() -> None:
    """A parent SIGKILLed: the watchdog stops its child (no death signal asked for), then exits itself."""
    parent_program = textwrap.dedent(
        """
        import subprocess, sys, signal
        from tools.children import Watchdog
        watchdog = Watchdog(grace=0.5)
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
        child = subprocess.Popen(sleeper, start_new_session=True)
        watchdog.watch(child.pid, signal.SIGTERM, group=True)
        print(child.pid, watchdog.process.pid, flush=True)
        sys.stdin.read()
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_program],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child, watchdog = map(int, parent.stdout.readline().split())
    left = {child, watchdog}
    try:
        parent.kill()
        parent.wait()
        left = wait_until_gone([child, watchdog], timeout=60)
        assert left == set(), "the child and the watchdog are gone"
    finally:
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        for stream in (parent.stdin, parent.stdout):
            if stream is not None:
                stream.close()
