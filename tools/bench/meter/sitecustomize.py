"""A bench instrument for the local host: the CPU its Argon2id work takes (figure 5b).

Python imports this module at start-up, as ``sitecustomize``, when its folder is
on ``PYTHONPATH``; the bench puts it there for a host it measures, with
``BENCH_ARGON2_METER`` naming a file. Every hash and verification of
argon2-cffi's ``PasswordHasher`` is then timed on its thread's CPU clock, and on
``SIGUSR1`` the totals (seconds, count) are written to that file. Nothing of the
product imports it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

_OUTPUT = os.environ.get("BENCH_ARGON2_METER")


def _install(output: str) -> None:
    import argon2  # noqa: PLC0415 - only in a measured host

    lock = threading.Lock()
    totals = [0.0, 0]

    def timed(method: Callable[..., Any]) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                spent = time.thread_time() - started
                with lock:
                    totals[0] += spent
                    totals[1] += 1

        return measured

    def report(*_: object) -> None:
        with lock:
            seconds, count = totals
        partial = f"{output}.partial"
        with open(partial, "w", encoding="utf-8") as file:
            file.write(f"{seconds!r} {count}\n")
        os.replace(partial, output)  # the reader never sees half a line

    argon2.PasswordHasher.hash = timed(argon2.PasswordHasher.hash)  # type: ignore[method-assign]
    argon2.PasswordHasher.verify = timed(argon2.PasswordHasher.verify)  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, report)


if _OUTPUT:
    _install(_OUTPUT)
