"""A local host for the app's HTTP, queue and timer functions, for machines without Core Tools.

``python -m tools.devhost [--host H] [--port P]`` serves every function folder
of the project according to its ``function.json``, as ``func start`` would:
it loads ``local.settings.json`` ``Values`` into the environment without
overriding variables already set, listens on ``Host.LocalHttpPort`` (default
7071), answers CORS as ``Host.CORS`` and ``Host.CORSCredentials`` say, and
reads ``host.json`` as the host reads it (an app setting
``AzureFunctionsJobHost__path__to__key`` overrides ``path.to.key``).

Each behaviour follows the source it names; docs/local-host.md lists them
all, with the tests that check them, and what is not reproduced.

The host is in these modules, each following the source it names:

- :mod:`tools.devhost.local_settings`: ``local.settings.json`` (``Values``, ``Host``);
- :mod:`tools.devhost.host_json`: ``host.json`` and its overrides;
- :mod:`tools.devhost.app_settings`: app settings, ``%name%``, disabled functions;
- :mod:`tools.devhost.discovery` and :mod:`tools.devhost.functions`: the function
  folders, indexed and loaded as the host does it;
- :mod:`tools.devhost.routes` and :mod:`tools.devhost.route_constraints`: ASP.NET
  Core's route templates and constraints;
- :mod:`tools.devhost.server` and :mod:`tools.devhost.cors`: serving HTTP (routing,
  requests, body limits, CORS, shutdown);
- :mod:`tools.devhost.queue_trigger` and :mod:`tools.devhost.timer_trigger`: the Storage
  Queues and timer extensions, which run from when the server starts serving until it
  shuts down;
- :mod:`tools.devhost.worker`: loading and calling functions as the Python worker does.

This module is the command line: it builds the host (:func:`build_host`), or starts it as a
child process (:func:`spawn`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from tools.children import preexec
from tools.devhost.discovery import discover_functions, discover_queue_functions, discover_timer_functions
from tools.devhost.host_json import HOST_JSON_OVERRIDE_PREFIX, HostJson, route_prefix
from tools.devhost.local_settings import load_local_settings
from tools.devhost.queue_trigger import QueueHost, QueuesOptions
from tools.devhost.route_constraints import RouteTemplateError
from tools.devhost.server import DevHost, request_body_limit
from tools.devhost.timer_trigger import TimerHost
from tools.devhost.worker import WorkerUnavailable, worker_description

#: Read by the tests and tools that use the host as ``devhost.<name>``.
__all__ = ["HostJson", "app_environment", "build_host", "main", "route_prefix", "spawn"]


logger = logging.getLogger("devhost")

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def build_host(root: Path, host: str, port: int | None, settings: Path | None = None) -> DevHost:
    """Load settings and functions from ``root`` and bind the server (port 0 picks a free one)."""
    config = load_local_settings(settings or root / "local.settings.json")
    functions = discover_functions(root)
    queue_functions = discover_queue_functions(root)
    timer_functions = discover_timer_functions(root)
    options = QueuesOptions()
    if queue_functions:
        section = HostJson.load(root).section("extensions", "queues")
        options = QueuesOptions.from_settings(section, os.environ)
    queues = QueueHost(queue_functions, options)
    timers = TimerHost(timer_functions, root=root, environ=os.environ)
    return DevHost(
        (host, config.port if port is None else port),
        functions,
        config,
        queues,
        timers,
        body_limit=request_body_limit(),
    )


#: Environment variables that configure this service (or the platform it reads them from).
APP_SETTING_PREFIXES = (
    "AUTH_",
    "ACCOUNTS_",
    "AzureWebJobs",  # AzureWebJobsStorage, AzureWebJobs.<name>.Disabled
    "WEBSITE_",
    "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",
    HOST_JSON_OVERRIDE_PREFIX,
)


def app_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any of the service's settings, plus ``settings``.

    For a child host whose configuration must not pick up what happens to be set in the shell.
    """
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(APP_SETTING_PREFIXES)
    }
    return inherited | dict(settings)


def spawn(
    port: int,
    settings: Path,
    environment: Mapping[str, str],
    *,
    root: Path | None = None,
    cpus: set[int] | None = None,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start ``python -m tools.devhost`` as a child process and wait until it listens.

    ``root`` is the function app's folder (default: this project). ``cpus``, when
    given, confines the host to those CPUs: the child sets its affinity before
    ``exec``, so every thread it starts (request threads, listeners) inherits it.
    """
    command = [sys.executable, "-m", "tools.devhost", "--port", str(port), "--settings", str(settings)]
    if root is not None:
        command += ["--root", str(root)]
    if cpus is not None and not cpus:
        raise ValueError("cpus must name at least one CPU")
    if "preexec_fn" in popen:
        raise TypeError("spawn sets preexec_fn itself (pass cpus)")
    # Default signal dispositions whatever this process inherited: SIGINT and SIGTERM stop the host.
    popen["preexec_fn"] = preexec(cpus=cpus)
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=dict(environment), **popen)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the local host exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise TimeoutError("the local host did not start listening within 30 s")


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Like Ctrl-C: unwind serve_forever, so that shutdown drains the queue and timer listeners.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.devhost", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default Host.LocalHttpPort or 7071)")
    parser.add_argument("--root", type=Path, default=PROJECT_ROOT, help="the function app's folder")
    parser.add_argument(
        "--settings", type=Path, default=None, help="settings file (default ROOT/local.settings.json)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)
    try:
        server = build_host(args.root.resolve(), args.host, args.port, args.settings)
    except (RouteTemplateError, ValueError, WorkerUnavailable) as error:
        logger.error("The host cannot start: %s", error)
        raise SystemExit(1) from error
    bound_host, bound_port = server.server_address[:2]
    print(f"Worker: {worker_description()}", flush=True)
    for function in server.functions:
        methods = ",".join(sorted(function.methods)) if function.methods else "all"
        disabled = " (disabled)" if function.disabled else ""
        logger.info("%s: [%s] %s%s", function.name, methods, function.route.template, disabled)
    for queue_function in server.queues.functions:
        trigger = queue_function.trigger
        logger.info(
            "%s: queueTrigger %s (connection %s)",
            trigger.function_name,
            trigger.queue_name,
            trigger.connection.setting,
        )
    if server.queues.functions:
        logger.info("Queue options: %s", server.queues.options)
    for timer_function in server.timers.functions:
        trigger_info = timer_function.trigger
        logger.info(
            "%s: timerTrigger %s (runOnStartup %s, useMonitor %s)",
            timer_function.name,
            trigger_info.schedule.describe(),
            trigger_info.run_on_startup,
            trigger_info.use_monitor,
        )
    print(f"Serving {len(server.functions)} functions on http://{bound_host!s}:{bound_port}", flush=True)
    if server.queues.functions:
        print(f"Listening to queues for {len(server.queues.functions)} functions", flush=True)
    if server.timers.functions:
        print(f"Running timers for {len(server.timers.functions)} functions", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
