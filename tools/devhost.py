"""A local host for the app's HTTP and queue functions, for machines without Core Tools.

``python -m tools.devhost [--host H] [--port P]`` serves every function folder
of the project according to its ``function.json`` (route, methods, the route
prefix from ``host.json``), calls its ``main`` with a real
``azure.functions.HttpRequest`` and writes back the ``HttpResponse`` it returns.
Like ``func start``, it loads ``local.settings.json`` ``Values`` into the
environment without overriding variables already set, listens on
``Host.LocalHttpPort`` (default 7071) and answers CORS as ``Host.CORS`` says.
Requests are served concurrently from a thread pool, as the Python worker does.

Folders with a ``queueTrigger`` binding run as the host's Storage Queues
extension runs them (see :mod:`tools.queue_trigger`), from when the server
starts serving until it shuts down. ``host.json`` is read as the host reads it:
an app setting ``AzureFunctionsJobHost__path__to__key`` overrides ``path.to.key``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from tools.local_settings import apply_local_settings
from tools.queue_trigger import FunctionIndexingError, QueueFunction, QueueHost, QueuesOptions, QueueTrigger

logger = logging.getLogger("devhost")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions host's own limit
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")
#: The prefix of app settings that override ``host.json`` (``AzureFunctionsJobHost__a__b``).
HOST_JSON_OVERRIDE_PREFIX = "AzureFunctionsJobHost"
#: How long shutdown waits for queue-triggered invocations in flight.
SHUTDOWN_TIMEOUT = 30.0


class InvocationContext(func.Context):
    """What the Python worker passes as ``context``: the invocation id and the function."""

    def __init__(self, function_name: str, function_directory: str, invocation_id: str | None = None) -> None:
        self._invocation_id = invocation_id or str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def thread_local_storage(self) -> Any:
        return self._local

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


@dataclass(frozen=True)
class EntryPoint:
    """A function folder's entry point, called as the Python worker calls it.

    The trigger value goes in as ``parameter``, an :class:`InvocationContext` as
    ``context`` if ``main`` takes one; an ``async def`` entry point is run to
    completion. Calling it returns what ``main`` returned.
    """

    name: str
    folder: Path
    main: Callable[..., Any]
    parameter: str
    takes_context: bool

    def __call__(self, value: Any, invocation_id: str) -> Any:
        arguments: dict[str, Any] = {self.parameter: value}
        if self.takes_context:
            arguments["context"] = InvocationContext(self.name, str(self.folder), invocation_id)
        result = self.main(**arguments)
        if inspect.iscoroutine(result):
            return asyncio.run(result)
        return result


@dataclass(frozen=True)
class HttpFunction:
    """One HTTP-triggered function folder, ready to be called."""

    name: str
    folder: Path
    pattern: re.Pattern[str]
    methods: frozenset[str]
    parameter: str
    main: Callable[..., Any]
    takes_context: bool

    def call(self, request: func.HttpRequest) -> tuple[str, Any]:
        """Call ``main`` as the worker would; return the invocation id and what it returned."""
        invocation_id = str(uuid.uuid4())
        entry = EntryPoint(self.name, self.folder, self.main, self.parameter, self.takes_context)
        return invocation_id, entry(request, invocation_id)

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.fullmatch(path)
        if found is None:
            return None
        return {key: value for key, value in found.groupdict().items() if value is not None}


@dataclass(frozen=True)
class HostConfig:
    """What ``local.settings.json`` ``Host`` says about serving."""

    port: int = 7071
    cors_origins: tuple[str, ...] = ()
    cors_credentials: bool = False


def load_local_settings(path: Path, environ: dict[str, str] | None = None) -> HostConfig:
    """Copy the ``Values`` of a ``local.settings.json`` into ``environ`` (never overriding).

    :returns: what its ``Host`` section says; defaults when the file is missing.
    """
    document = apply_local_settings(path, os.environ if environ is None else environ)
    host = document.get("Host") or {}
    origins = tuple(origin.strip() for origin in str(host.get("CORS", "")).split(",") if origin.strip())
    return HostConfig(
        port=int(host.get("LocalHttpPort", 7071)),
        cors_origins=origins,
        cors_credentials=bool(host.get("CORSCredentials", False)),
    )


class HostJson:
    """``host.json`` as the Functions host's configuration sees it.

    Keys compare case-insensitively, and an app setting
    ``AzureFunctionsJobHost__<path>__<key>`` (``:`` works as ``__``) overrides
    the file's ``<path>.<key>``: the host loads ``host.json`` into its
    configuration under ``AzureFunctionsJobHost`` and the environment over it
    (learn.microsoft.com/azure/azure-functions/functions-host-json#override-hostjson-values).
    Values from the file keep their JSON types; overrides are strings.
    """

    def __init__(self, document: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self._values: dict[str, Any] = {}
        self._flatten((), document)
        prefix = HOST_JSON_OVERRIDE_PREFIX.lower() + ":"
        for name, value in environ.items():
            key = name.replace("__", ":").lower()
            if key.startswith(prefix):
                self._values[key[len(prefix) :]] = value

    @classmethod
    def load(cls, root: Path, environ: Mapping[str, str] | None = None) -> HostJson:
        """Read ``root/host.json`` (none is an empty one) with ``environ``'s overrides (default: ours)."""
        path = root / "host.json"
        document = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        return cls(document, os.environ if environ is None else environ)

    def _flatten(self, path: tuple[str, ...], value: Any) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                self._flatten((*path, str(key)), child)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                self._flatten((*path, str(index)), child)
        elif path:
            self._values[":".join(path).lower()] = value

    def get(self, *path: str, default: Any = None) -> Any:
        """The value at ``path`` (``get("extensions", "http", "routePrefix")``), or ``default``."""
        return self._values.get(":".join(path).lower(), default)

    def section(self, *path: str) -> dict[str, Any]:
        """The values directly under ``path``, by lower-cased key."""
        prefix = ":".join(path).lower() + ":"
        return {
            key[len(prefix) :]: value
            for key, value in self._values.items()
            if key.startswith(prefix) and ":" not in key[len(prefix) :]
        }


def route_prefix(root: Path, environ: Mapping[str, str] | None = None) -> str:
    """Return ``extensions.http.routePrefix`` of ``host.json`` (default ``api``), overrides applied."""
    prefix = HostJson.load(root, environ).get("extensions", "http", "routePrefix", default="api")
    return str(prefix).strip("/")


def route_pattern(prefix: str, template: str) -> re.Pattern[str]:
    """Compile a Functions route template (``orders/{id:int}/{rest?}``, ``{*path}``) to a regex."""
    parts: list[str] = []
    for segment in template.strip("/").split("/"):
        parameter = re.fullmatch(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\??)\}", segment)
        if parameter is None:
            parts.append("/" + re.escape(segment))
            continue
        catch_all, name, optional = parameter.groups()
        body = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
        parts.append(f"(?:/{body})?" if optional or catch_all else "/" + body)
    base = "/" + prefix if prefix else ""
    return re.compile(re.escape(base) + "".join(parts), re.IGNORECASE)


def _function_folders(root: Path, trigger_type: str) -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """Each enabled function folder under ``root`` with a ``trigger_type`` trigger, its config and binding."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    found = []
    for config_path in sorted(root.glob("*/function.json")):
        config = json.loads(config_path.read_text(encoding="utf-8"))
        trigger = next((b for b in config.get("bindings", []) if b.get("type") == trigger_type), None)
        if trigger is not None and not config.get("disabled"):
            found.append((config_path.parent, config, trigger))
    return found


def discover_functions(root: Path) -> list[HttpFunction]:
    """Import every HTTP-triggered function folder under ``root``."""
    prefix = route_prefix(root)
    functions = []
    for folder, config, trigger in _function_folders(root, "httpTrigger"):
        main = _load_entry_point(folder, config)
        methods = frozenset(m.upper() for m in trigger.get("methods") or _ALL_METHODS)
        functions.append(
            HttpFunction(
                name=folder.name,
                folder=folder,
                pattern=route_pattern(prefix, trigger.get("route") or folder.name),
                methods=methods,
                parameter=trigger.get("name", "req"),
                main=main,
                takes_context="context" in inspect.signature(main).parameters,
            )
        )
    return functions


def discover_queue_functions(root: Path, environ: Mapping[str, str] | None = None) -> list[QueueFunction]:
    """Import every queue-triggered function folder under ``root`` whose binding resolves.

    As the host indexes functions: a folder whose ``queueName`` names an
    undefined ``%setting%``, or whose ``connection`` resolves to nothing, is
    logged as in error and neither imported nor run; the others still are.
    """
    environ = os.environ if environ is None else environ
    functions = []
    for folder, config, binding in _function_folders(root, "queueTrigger"):
        try:
            trigger = QueueTrigger.from_binding(folder.name, binding, environ)
        except FunctionIndexingError as error:
            logger.error("The '%s' function is in error: %s", folder.name, error)
            continue
        main = _load_entry_point(folder, config)
        takes_context = "context" in inspect.signature(main).parameters
        entry = EntryPoint(folder.name, folder, main, trigger.parameter, takes_context)
        functions.append(QueueFunction(trigger=trigger, invoke=entry))
    return functions


def _load_entry_point(folder: Path, config: Mapping[str, Any]) -> Callable[..., Any]:
    script = folder / config.get("scriptFile", "__init__.py")
    spec = importlib.util.spec_from_file_location(
        folder.name,
        script,
        submodule_search_locations=[str(folder)] if script.name == "__init__.py" else None,
    )
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[folder.name] = module
    spec.loader.exec_module(module)
    entry: Callable[..., Any] = getattr(module, config.get("entryPoint", "main"))
    return entry


class FunctionsRequestHandler(BaseHTTPRequestHandler):
    """Routes each request to a function, as the Functions host would."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, a keep-alive
    # client's delayed ACK would hold the second back for ~40 ms.
    disable_nagle_algorithm = True
    server: DevHost

    def do_request(self) -> None:
        started = time.perf_counter()
        self.invocation_id = "-"
        status = self._serve()
        elapsed_ms = (time.perf_counter() - started) * 1000
        path = urlsplit(self.path).path
        logger.info(
            "%s %s -> %s (%.1f ms) invocation_id=%s",
            self.command,
            path,
            status,
            elapsed_ms,
            self.invocation_id,
        )

    def __getattr__(self, name: str) -> Any:
        # The base class dispatches to do_<METHOD> and answers 501 where there is none; like the
        # Functions host, route every method, so that one no function takes gets 404.
        if name.startswith("do_"):
            return self.do_request
        raise AttributeError(name)

    def _serve(self) -> int:
        url = urlsplit(self.path)
        origin = self.headers.get("Origin")
        if self.command == "OPTIONS" and origin and self.headers.get("Access-Control-Request-Method"):
            return self._preflight(origin)
        try:
            body = self._read_body()
        except ValueError:
            return self._send(413, {}, b"")
        for function in self.server.functions:
            route_params = function.match(url.path)
            if route_params is None:
                continue
            if self.command not in function.methods:
                continue
            request = func.HttpRequest(
                method=self.command,
                url=f"http://{self.headers.get('Host', 'localhost')}{self.path}",
                headers=self._forwarded_headers(),
                params=dict(parse_qsl(url.query, keep_blank_values=True)),
                route_params=route_params,
                body=body,
            )
            return self._invoke(function, request, origin)
        return self._send(404, self._cors_headers(origin), b"")

    def _forwarded_headers(self) -> dict[str, str]:
        """The request's headers as the platform's front end passes them on.

        Like Azure's front ends, append the address of the connection's peer
        (``IP:port``) to ``X-Forwarded-For``, after whatever the client sent.
        """
        headers = {name: value for name, value in self.headers.items() if name.lower() != "x-forwarded-for"}
        host, port = self.client_address[:2]
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers["X-Forwarded-For"] = ", ".join([*self.headers.get_all("X-Forwarded-For", []), peer])
        return headers

    def _invoke(self, function: HttpFunction, request: func.HttpRequest, origin: str | None) -> int:
        try:
            invocation_id, response = function.call(request)
            self.invocation_id = invocation_id
            if not isinstance(response, func.HttpResponse):
                raise TypeError(f"{function.name} returned {type(response).__name__}, not HttpResponse")
        except Exception:
            logger.exception("Function %s failed", function.name)
            return self._send(500, self._cors_headers(origin), b"")
        headers = dict(response.headers.items())
        headers.setdefault("Content-Type", response.mimetype or "text/plain")
        headers.update(self._cors_headers(origin))
        return self._send(response.status_code, headers, response.get_body() or b"")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            raise ValueError("request too large")
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BYTES:
                raise ValueError("request too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _preflight(self, origin: str) -> int:
        headers = self._cors_headers(origin)
        if headers:
            headers["Access-Control-Allow-Methods"] = self.headers.get("Access-Control-Request-Method", "")
            requested = self.headers.get("Access-Control-Request-Headers")
            if requested:
                headers["Access-Control-Allow-Headers"] = requested
            headers["Access-Control-Max-Age"] = "600"
        return self._send(204, headers, b"")

    def _cors_headers(self, origin: str | None) -> dict[str, str]:
        config = self.server.config
        if not origin or not config.cors_origins:
            return {}
        if "*" in config.cors_origins and not config.cors_credentials:
            return {"Access-Control-Allow-Origin": "*"}
        if "*" in config.cors_origins or origin in config.cors_origins:
            headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
            if config.cors_credentials:
                headers["Access-Control-Allow-Credentials"] = "true"
            return headers
        return {}

    def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> int:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silence the default access log; :meth:`do_request` logs instead."""


class DevHost(ThreadingHTTPServer):
    """The HTTP server: one thread a request, like the Python worker's thread pool.

    Its queue listeners (if any) run while it serves: :meth:`serve_forever`
    starts them, :meth:`server_close` stops them.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default of 5 resets bursts of concurrent clients

    def __init__(
        self,
        address: tuple[str, int],
        functions: list[HttpFunction],
        config: HostConfig,
        queues: QueueHost | None = None,
    ) -> None:
        # Before binding: a failed bind calls server_close.
        self.queues = queues or QueueHost([], QueuesOptions())
        self._queues_started = False
        super().__init__(address, FunctionsRequestHandler)
        self.functions = functions
        self.config = config

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Start the queue listeners, then serve HTTP until :meth:`shutdown`."""
        if not self._queues_started:
            self._queues_started = True
            self.queues.start()
        super().serve_forever(poll_interval)

    def server_close(self) -> None:
        """Stop the queue listeners (letting invocations in flight finish), then close the socket."""
        if self._queues_started:
            self._queues_started = False
            self.queues.stop(SHUTDOWN_TIMEOUT)
        super().server_close()


def build_host(root: Path, host: str, port: int | None, settings: Path | None = None) -> DevHost:
    """Load settings and functions from ``root`` and bind the server (port 0 picks a free one)."""
    config = load_local_settings(settings or root / "local.settings.json")
    functions = discover_functions(root)
    queue_functions = discover_queue_functions(root)
    options = QueuesOptions()
    if queue_functions:
        section = HostJson.load(root).section("extensions", "queues")
        options = QueuesOptions.from_settings(section, os.environ)
    queues = QueueHost(queue_functions, options)
    return DevHost((host, config.port if port is None else port), functions, config, queues)


#: Environment variables that configure this service (or the platform it reads them from).
APP_SETTING_PREFIXES = ("AUTH_", "ACCOUNTS_", "AzureWebJobsStorage", "WEBSITE_", HOST_JSON_OVERRIDE_PREFIX)


def app_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any of the service's settings, plus ``settings``.

    For a child host whose configuration must not pick up what happens to be set in the shell.
    """
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(APP_SETTING_PREFIXES)
    }
    return inherited | dict(settings)


def spawn(
    port: int, settings: Path, environment: Mapping[str, str], *, root: Path | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start ``python -m tools.devhost`` as a child process and wait until it listens.

    ``root`` is the function app's folder (default: this project).
    """
    command = [sys.executable, "-m", "tools.devhost", "--port", str(port), "--settings", str(settings)]
    if root is not None:
        command += ["--root", str(root)]
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
    # Like Ctrl-C: unwind serve_forever, so that shutdown drains the queue listeners.
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
    server = build_host(args.root.resolve(), args.host, args.port, args.settings)
    bound_host, bound_port = server.server_address[:2]
    for function in server.functions:
        logger.info(
            "%s: [%s] %s", function.name, ",".join(sorted(function.methods)), function.pattern.pattern
        )
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
    print(f"Serving {len(server.functions)} functions on http://{bound_host!s}:{bound_port}", flush=True)
    if server.queues.functions:
        print(f"Listening to queues for {len(server.queues.functions)} functions", flush=True)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
