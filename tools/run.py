"""``make run``: Azurite, a mail catcher and the functions on http://localhost:7071, until Ctrl-C.

Uses ``func start`` when Azure Functions Core Tools are installed, else the
local host (``python -m tools.devhost``). Azurite keeps its data in
``.azurite/`` (git-ignored). Mail the functions send goes to MailDev, whose
inbox is on http://127.0.0.1:1080 (SMTP on port 1025). Ctrl-C (or SIGTERM)
stops everything this started. A hard stop (SIGKILL) does too: on Linux each
child is told by the kernel that its parent died (Azurite and the host get
SIGINT, MailDev SIGTERM), and everywhere a watchdog of its own session stops
whatever is left (see :mod:`tools.children`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tools.children import Watchdog, preexec, stop
from tools.devhost.local_settings import add_missing_settings, create_local_settings
from tools.emulators.azurite import PROJECT_ROOT, Azurite
from tools.emulators.maildev import DEFAULT_SMTP_PORT, DEFAULT_WEB_PORT, MailDev, MailDevError, PortInUse

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def host_command(port: int, settings: Path) -> list[str]:
    """``func start`` where Core Tools are installed, else the local host."""
    default_settings = settings == PROJECT_ROOT / "local.settings.json"
    if shutil.which("func") and default_settings:
        return ["func", "start", "--port", str(port)]
    if not default_settings:
        print("A settings file other than local.settings.json: serving with the local host", flush=True)
    else:
        print("Azure Functions Core Tools not found: serving with python -m tools.devhost", flush=True)
    return [sys.executable, "-m", "tools.devhost", "--port", str(port), "--settings", str(settings)]


def host_environment(
    settings: Path, environ: Mapping[str, str], *, maildev: MailDev, azurite: Azurite
) -> dict[str, str]:
    """The host's environment: ``environ`` plus what points the settings at the emulators started here.

    Both hosts let the environment override ``local.settings.json``. When the
    settings send mail to a loopback SMTP server (the catcher),
    ``AUTH_MAIL_SMTP_PORT`` becomes the catcher's port. When Azurite is not on
    its default ports, ``UseDevelopmentStorage=true`` (which means those
    ports) becomes a connection string naming the ports it is on, so the mail
    queue lands in this Azurite.
    """
    document = json.loads(settings.read_text(encoding="utf-8")) if settings.exists() else {}
    values = {name: str(value) for name, value in (document.get("Values") or {}).items()} | dict(environ)
    environment = dict(environ)
    if values.get("AUTH_MAIL_SMTP_HOST", "").strip().lower() in _LOOPBACK:
        environment["AUTH_MAIL_SMTP_PORT"] = str(maildev.smtp_port)
    storage = values.get("AzureWebJobsStorage", _DEVELOPMENT_STORAGE)
    if azurite.table_port != 10002 and storage == _DEVELOPMENT_STORAGE:
        environment["AzureWebJobsStorage"] = azurite.storage_connection_string
    return environment


def _stop_host(host: subprocess.Popen[bytes]) -> None:
    stop(host, signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.run", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071, help="functions port (default 7071)")
    parser.add_argument("--table-port", type=int, default=10002, help="Azurite Table port (default 10002)")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT / ".azurite", help="Azurite data folder")
    parser.add_argument("--settings", type=Path, default=PROJECT_ROOT / "local.settings.json")
    mail = parser.add_argument_group("mail catcher (MailDev)")
    mail.add_argument(
        "--smtp-port", type=int, default=DEFAULT_SMTP_PORT, help="SMTP port (default %(default)s)"
    )
    mail.add_argument(
        "--inbox-port", type=int, default=DEFAULT_WEB_PORT, help="inbox port (default %(default)s)"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # an IDE's stop button: clean up as for Ctrl-C

    if create_local_settings(args.settings):
        print(f"Created {args.settings.name} with a new random AUTH_SIGNING_KEY", flush=True)
    elif added := add_missing_settings(args.settings):
        print(f"Added the mail settings it lacked to {args.settings.name}: {', '.join(added)}", flush=True)
    azurite = Azurite(table_port=args.table_port, location=args.data, all_services=True, die_with_parent=True)
    maildev = MailDev(smtp_port=args.smtp_port, web_port=args.inbox_port, die_with_parent=True)
    host: subprocess.Popen[bytes] | None = None
    watchdog = Watchdog()
    try:
        print(
            f"Starting Azurite (table {azurite.table_port}, blob {azurite.blob_port}, "
            f"queue {azurite.queue_port}) in {args.data}",
            flush=True,
        )
        azurite.start()
        watchdog.watch(azurite.pid, signal.SIGINT, group=True)
        print(f"Starting the mail catcher (MailDev, SMTP {maildev.smtp_port})", flush=True)
        maildev.start()
        watchdog.watch(maildev.pid, signal.SIGTERM, group=True)
        print(f"\n    Mail inbox: {maildev.inbox_url}\n", flush=True)
        environment = host_environment(args.settings, os.environ, maildev=maildev, azurite=azurite)
        host = subprocess.Popen(
            host_command(args.port, args.settings),
            cwd=PROJECT_ROOT,
            env=environment,
            # SIGINT stops it (see _stop_host): at its default whatever we inherited; and when we die.
            preexec_fn=preexec(death_signal=signal.SIGINT),  # noqa: PLW1509 - only system calls
        )
        watchdog.watch(host.pid, signal.SIGINT)
        status = host.wait()
        watchdog.forget(host.pid)
        return status
    except KeyboardInterrupt:
        if host is not None:
            _stop_host(host)
            watchdog.forget(host.pid)
        return 0
    except MailDevError as error:
        hint = " (choose free ones with --smtp-port and --inbox-port)" if isinstance(error, PortInUse) else ""
        print(f"Could not start the mail catcher: {error}{hint}", flush=True)
        return 1
    finally:
        stopped = [p.pid for p in (maildev.process, azurite.process) if p is not None]
        maildev.stop()
        azurite.stop()
        for pid in stopped:
            watchdog.forget(pid)
        watchdog.close()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
