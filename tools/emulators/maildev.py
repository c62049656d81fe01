"""Start and stop MailDev (the npm package installed into ./node_modules): a local mail catcher.

MailDev accepts any mail on its SMTP port and shows it in a web inbox (and its
REST API, ``GET /email``). Both listen on loopback only. Mail is kept in
memory; the ``.eml`` files MailDev writes beside that go to a private scratch
folder that :meth:`MailDev.stop` removes, so nothing outlives the process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from tools.children import preexec, stop
from tools.emulators.azurite import BIN, free_port

HOST = "127.0.0.1"
DEFAULT_SMTP_PORT = 1025
DEFAULT_WEB_PORT = 1080


class MailDevError(RuntimeError):
    """MailDev could not be started."""


class PortInUse(MailDevError):
    """A port MailDev was to listen on is taken (by another MailDev, say)."""


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether nothing listens on ``host:port`` right now (so MailDev may bind it)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class MailDev:
    """A MailDev SMTP server and web inbox on loopback, as a child process."""

    def __init__(
        self,
        *,
        smtp_port: int | None = None,
        web_port: int | None = None,
        quiet: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        """``die_with_parent``: on Linux MailDev gets SIGTERM when the thread that started it dies."""
        self.smtp_port = smtp_port or free_port()
        self.web_port = web_port or free_port()
        self.quiet = quiet
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None
        self._scratch: str | None = None

    @property
    def pid(self) -> int:
        """The process id of the running MailDev."""
        if self.process is None:
            raise RuntimeError("MailDev is not running")
        return self.process.pid

    @property
    def inbox_url(self) -> str:
        """The web inbox (its REST API lists messages at ``/email``)."""
        return f"http://{HOST}:{self.web_port}"

    def command(self) -> list[str]:
        return [
            str(BIN / "maildev"),
            "--smtp", str(self.smtp_port),
            "--web", str(self.web_port),
            "--ip", HOST,
            "--web-ip", HOST,
            "--silent",
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> MailDev:
        """Start MailDev and wait until both ports accept connections.

        :raises MailDevError: not installed, a port is taken, or it did not come up in ``timeout`` s.
        """
        if not (BIN / "maildev").exists():
            raise MailDevError(f"MailDev is not installed in {BIN}; run `npm ci` (make does)")
        for name, port in (("SMTP", self.smtp_port), ("inbox", self.web_port)):
            if not port_is_free(port):
                raise PortInUse(f"its {name} port {port} is in use")
        # Its own temporary folder (for the .eml files) and working directory (no stray config file).
        self._scratch = tempfile.mkdtemp(prefix="maildev-")
        environment = os.environ | {"TMPDIR": self._scratch}
        output = subprocess.DEVNULL if self.quiet else None
        self.process = subprocess.Popen(
            self.command(),
            cwd=self._scratch,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            start_new_session=True,
            preexec_fn=preexec(  # noqa: PLW1509 - only system calls, no lock to deadlock on
                death_signal=signal.SIGTERM if self.die_with_parent else None
            ),
        )
        deadline = time.monotonic() + timeout
        while not (_accepts(self.smtp_port) and _accepts(self.web_port)):
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()
                raise MailDevError(f"MailDev exited with status {code} while starting")
            if time.monotonic() > deadline:
                self.stop()
                ports = f"{self.smtp_port} and {self.web_port}"
                raise MailDevError(f"MailDev did not listen on ports {ports} within {timeout} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM (like SIGINT) is MailDev's graceful shutdown: it closes both servers and exits.
            stop(self.process, signal.SIGTERM, group=True)
            self.process = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> MailDev:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
