"""Child processes that start the same however their parent was started, and die with it.

A program started as a background job of a non-interactive shell (``sh -c 'cmd &'``)
starts with SIGINT ignored, and every child inherits that, through ``exec``: a
child that is to be stopped with SIGINT then never sees it. The same goes for
a blocked signal mask. :func:`preexec` resets both in the child, before ``exec``.

A parent killed outright (SIGKILL) runs no clean-up. On Linux a child can ask
the kernel for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``);
:class:`Watchdog` is the fallback everywhere: a small process of its own
session holding the read end of a pipe only the parent writes to. When the
parent dies, however, the pipe reaches end-of-file and the watchdog stops what
the parent registered with it.

Run as ``python -m tools.children`` it is that watchdog.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from typing import IO, Any

__all__ = ["Watchdog", "preexec", "stop"]

#: Signals a program may rely on receiving with their default effect (a parent may have ignored them).
RESET_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


# Looked up here, in the parent: a child between fork and exec should only make system calls.
_prctl = _load_prctl()


def preexec(*, cpus: Iterable[int] | None = None, death_signal: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn``: default signal dispositions and an empty signal mask, whatever the parent had.

    ``cpus`` confines the child (every thread it will start) to those CPUs.
    ``death_signal`` asks Linux to send the child that signal when this
    process's calling thread dies (create such children from the main
    thread); elsewhere it does nothing, and :class:`Watchdog` covers it.
    """
    allowed = None if cpus is None else frozenset(cpus)
    if allowed is not None and not allowed:
        raise ValueError("cpus must name at least one CPU")
    parent = os.getpid()

    def setup() -> None:
        for signum in RESET_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        if allowed is not None:
            os.sched_setaffinity(0, allowed)
        if death_signal is not None and _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
            if os.getppid() != parent:  # the parent died before we asked
                os._exit(1)

    return setup


class Watchdog:
    """Stops the registered processes when this process ends, however it ends (SIGKILL too).

    The watchdog gives them ``grace`` seconds to go by themselves (a death
    signal, or this process's own clean-up), then sends each its stop signal,
    waits ``grace`` seconds more, and kills what is left.
    """

    def __init__(self, *, grace: float = 5.0) -> None:
        read, write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tools.children", str(grace)],
                stdin=read,
                stdout=subprocess.DEVNULL,
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                start_new_session=True,  # a signal to our process group must not take it along
                preexec_fn=preexec(),  # noqa: PLW1509 - only system calls
            )
        finally:
            os.close(read)
        self._pipe: IO[str] | None = os.fdopen(write, "w", buffering=1)

    def watch(self, pid: int, stop_signal: int, *, group: bool = False) -> None:
        """Stop ``pid`` (its whole process group when ``group``) with ``stop_signal`` if we die first."""
        if self._pipe is not None:
            self._pipe.write(f"{'group' if group else 'pid'} {pid} {int(stop_signal)}\n")

    def forget(self, pid: int) -> None:
        """``pid`` was stopped and reaped: never signal that number (it may be another's by then)."""
        if self._pipe is not None:
            self._pipe.write(f"forget {pid} 0\n")

    def close(self) -> None:
        """Everything is stopped already: let the watchdog go (it checks, and exits)."""
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
            self.process.wait()


def stop(process: subprocess.Popen[Any], signum: int, *, group: bool = False, timeout: float = 10.0) -> None:
    """Stop a child with ``signum`` (its graceful close), then SIGKILL if it is there after ``timeout`` s.

    ``group``: signal its process group (a child started in a session of its
    own, with whatever it started). Returns once the child has exited.
    """
    if process.poll() is not None:
        return

    def send(number: int) -> None:
        if group:
            os.killpg(process.pid, number)
        else:
            process.send_signal(number)

    try:
        send(signum)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
    except ProcessLookupError:
        pass  # it exited meanwhile
    process.wait()


def _alive(kind: str, pid: int) -> bool:
    try:
        (os.killpg if kind == "group" else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(kind: str, pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        (os.killpg if kind == "group" else os.kill)(pid, signum)


def _wait_gone(targets: list[tuple[str, int, int]], seconds: float) -> list[tuple[str, int, int]]:
    deadline = time.monotonic() + seconds
    while (left := [t for t in targets if _alive(t[0], t[1])]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def main(argv: list[str] | None = None) -> int:
    """The watchdog: read targets from stdin until end-of-file, then stop those still there."""
    grace = float((argv if argv is not None else sys.argv[1:] or ["5"])[0])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is not ours
    targets: list[tuple[str, int, int]] = []
    for line in sys.stdin:
        kind, pid, signum = line.split()
        if kind == "forget":
            targets = [target for target in targets if target[1] != int(pid)]
        else:
            targets.append((kind, int(pid), int(signum)))
    left = _wait_gone(targets, grace)
    for kind, pid, signum in left:
        _signal(kind, pid, signum)
    for kind, pid, _ in _wait_gone(left, grace):
        _signal(kind, pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
