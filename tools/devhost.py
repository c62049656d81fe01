"""A local host for the app's HTTP functions, for machines without Core Tools.

``python -m tools.devhost [--host H] [--port P]`` serves every function folder
of the project according to its ``function.json`` (route, methods, the route
prefix from ``host.json``), calls its ``main`` with a real
``azure.functions.HttpRequest`` and writes back the ``HttpResponse`` it returns.
Like ``func start``, it loads ``local.settings.json`` ``Values`` into the
environment without overriding variables already set, listens on
``Host.LocalHttpPort`` (default 7071) and answers CORS as ``Host.CORS`` says.
Requests are served concurrently from a thread pool, as the Python worker does.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import logging
import os
import re
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
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from tools.local_settings import apply_local_settings

logger = logging.getLogger("devhost")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions host's own limit
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


class InvocationContext(func.Context):
    """What the Python worker passes as ``context``: the invocation id and the function."""

    def __init__(self, function_name: str, function_directory: str) -> None:
        self._invocation_id = str(uuid.uuid4())
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
        arguments: dict[str, Any] = {self.parameter: request}
        context = InvocationContext(self.name, str(self.folder))
        if self.takes_context:
            arguments["context"] = context
        return context.invocation_id, self.main(**arguments)

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


def route_prefix(root: Path) -> str:
    """Return ``extensions.http.routePrefix`` of ``host.json`` (default ``api``)."""
    path = root / "host.json"
    host = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    prefix = host.get("extensions", {}).get("http", {}).get("routePrefix", "api")
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


def discover_functions(root: Path) -> list[HttpFunction]:
    """Import every HTTP-triggered function folder under ``root``."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    prefix = route_prefix(root)
    functions = []
    for config_path in sorted(root.glob("*/function.json")):
        config = json.loads(config_path.read_text(encoding="utf-8"))
        trigger = next((b for b in config.get("bindings", []) if b.get("type") == "httpTrigger"), None)
        if trigger is None or config.get("disabled"):
            continue
        folder = config_path.parent
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
    """The HTTP server: one thread a request, like the Python worker's thread pool."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default of 5 resets bursts of concurrent clients

    def __init__(self, address: tuple[str, int], functions: list[HttpFunction], config: HostConfig) -> None:
        super().__init__(address, FunctionsRequestHandler)
        self.functions = functions
        self.config = config


def build_host(root: Path, host: str, port: int | None, settings: Path | None = None) -> DevHost:
    """Load settings and functions from ``root`` and bind the server (port 0 picks a free one)."""
    config = load_local_settings(settings or root / "local.settings.json")
    functions = discover_functions(root)
    return DevHost((host, config.port if port is None else port), functions, config)


#: Environment variables that configure this service (or the platform it reads them from).
APP_SETTING_PREFIXES = ("AUTH_", "ACCOUNTS_", "AzureWebJobsStorage", "WEBSITE_")


def app_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any of the service's settings, plus ``settings``.

    For a child host whose configuration must not pick up what happens to be set in the shell.
    """
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith(APP_SETTING_PREFIXES)
    }
    return inherited | dict(settings)


def spawn(port: int, settings: Path, environment: Mapping[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``python -m tools.devhost`` as a child process and wait until it listens."""
    command = [sys.executable, "-m", "tools.devhost", "--port", str(port), "--settings", str(settings)]
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
    print(f"Serving {len(server.functions)} functions on http://{bound_host!s}:{bound_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
