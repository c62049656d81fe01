"""Start and stop Azurite (the npm package installed into ./node_modules)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tools.children import preexec, stop

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = PROJECT_ROOT / "node_modules" / ".bin"
#: Azurite's well-known development account (public, the same in every Azurite).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def table_connection_string(port: int, host: str = "127.0.0.1") -> str:
    """Return the connection string of an Azurite Table service on ``port``."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"TableEndpoint=http://{host}:{port}/{ACCOUNT_NAME};"
    )


def pinning(cpus: set[int] | None, *, death_signal: int | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` that confines a child process to ``cpus`` before it runs (``None``: no pinning).

    Linux keeps CPU affinity per thread, and a new thread inherits its creator's:
    set in the child before ``exec``, it holds for every thread the program starts.
    The child also starts with default signal dispositions and an empty signal
    mask (see :func:`tools.children.preexec`).
    """
    return preexec(cpus=cpus, death_signal=death_signal)


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 30.0) -> None:
    """Block until something accepts connections on ``port``.

    :raises TimeoutError: nothing did within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on {host}:{port} within {timeout} s")


class Azurite:
    """An Azurite Table service (or all three services) on loopback, as a child process."""

    def __init__(
        self,
        *,
        table_port: int | None = None,
        location: Path | None = None,
        all_services: bool = False,
        quiet: bool = True,
        cpus: set[int] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        """``cpus``, when given, confines the emulator (all its threads) to those CPUs.

        ``die_with_parent``: on Linux the emulator gets SIGINT (its graceful close)
        when the thread that started it dies, however it dies.
        """
        self.table_port = table_port or free_port()
        # The default ports 10002/10000/10001 go together; any other table port gets free neighbours.
        default = self.table_port == 10002
        self.blob_port = 10000 if default else free_port()
        self.queue_port = 10001 if default else free_port()
        self.location = location
        self.all_services = all_services
        self.quiet = quiet
        self.cpus = cpus
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id of the running emulator."""
        if self.process is None:
            raise RuntimeError("Azurite is not running")
        return self.process.pid

    @property
    def connection_string(self) -> str:
        return table_connection_string(self.table_port)

    @property
    def storage_connection_string(self) -> str:
        """A connection string naming all three services (for ``AzureWebJobsStorage``)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/{ACCOUNT_NAME};"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/{ACCOUNT_NAME};"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/{ACCOUNT_NAME};"
        )

    def command(self) -> list[str]:
        program = "azurite" if self.all_services else "azurite-table"
        command = [
            str(BIN / program),
            "--tableHost", "127.0.0.1",
            "--tablePort", str(self.table_port),
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ]  # fmt: skip
        if self.all_services:
            command += ["--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port)]
            command += ["--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port)]
        if self.location is None:
            command.append("--inMemoryPersistence")
        else:
            self.location.mkdir(parents=True, exist_ok=True)
            command += ["--location", str(self.location)]
        if self.quiet:
            command.append("--silent")
        return command

    def start(self) -> Azurite:
        if not (BIN / "azurite-table").exists():
            raise FileNotFoundError(f"Azurite is not installed in {BIN}; run `npm ci` (make does)")
        output = subprocess.DEVNULL if self.quiet else None
        self.process = subprocess.Popen(
            self.command(),
            stdout=output,
            stderr=output,
            start_new_session=True,
            preexec_fn=pinning(  # noqa: PLW1509 - only system calls, no lock to deadlock on
                self.cpus, death_signal=signal.SIGINT if self.die_with_parent else None
            ),
        )
        wait_for_port(self.table_port)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        # SIGINT is Azurite's graceful close: it saves its store (SIGTERM loses recent writes).
        stop(self.process, signal.SIGINT, group=True)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
