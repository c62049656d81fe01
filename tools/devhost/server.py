"""The HTTP server and its request handler, as the Functions host serves HTTP functions.

(Azure/azure-functions-host ``src/WebJobs.Script.WebHost``, Azure/azure-webjobs-sdk-extensions
``src/WebJobs.Extensions.Http``, ASP.NET Core's CORS middleware and Kestrel.)

- CORS (:mod:`tools.devhost.cors`) answers a preflight before routing, and adds its
  headers to every other response;
- the first function, in the host's order, whose route and methods match gets the
  request (see :mod:`tools.devhost.discovery`); none, or a disabled one: 404;
- ``FunctionInvocationMiddleware.PopulateRouteData`` and
  ``GrpcMessageConversionExtensions.ToRpcHttp``: an optional parameter with no
  value is left out of ``route_params``; headers reach the worker with
  lower-cased names and repeated ones joined with ``,``; query parameters
  likewise, those with an empty value dropped; the body only when
  ``Content-Length`` is above 0 (a chunked body never reaches an
  out-of-process worker: host issue #7930);
- ``HttpRequestBodySizeMiddleware`` and ``Program.cs``: a body longer than
  ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` bytes (default 104857600) is refused
  before the function runs; the host answers it 500 (host issue #10519), not
  413, and closes the connection;
- ``ExceptionMiddleware``: a function that fails is a 500 with no body.

The queue and timer listeners run while the server serves (:class:`DevHost`).
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from tools.devhost.functions import HttpFunction
from tools.devhost.local_settings import HostConfig
from tools.devhost.queue_trigger import QueueHost, QueuesOptions
from tools.devhost.timer_trigger import TimerHost
from tools.devhost.worker import encode_http_response

logger = logging.getLogger("devhost")


#: ``ScriptConstants.DefaultMaxRequestBodySize``, which ``Program.cs`` gives Kestrel.
MAX_REQUEST_BYTES = 104857600
#: ``EnvironmentSettingNames.FunctionsRequestBodySizeLimit``.
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"


#: How long shutdown waits for queue- and timer-triggered invocations in flight.
SHUTDOWN_TIMEOUT = 30.0


def request_body_limit(environ: Mapping[str, str] | None = None) -> int:
    """``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` in bytes, or the host's default if unset or not a number."""
    environ = os.environ if environ is None else environ
    value = (environ.get(BODY_SIZE_LIMIT_SETTING) or "").strip()
    return int(value) if re.fullmatch(r"\+?[0-9]+", value) else MAX_REQUEST_BYTES


class BodyTooLarge(Exception):
    """``BadHttpRequestException`` (``RequestBodyTooLarge``), raised when the body is read."""


def _joined(pairs: Sequence[tuple[str, str]], *, lower: bool) -> dict[str, str]:
    """Values of the same name (any case) joined with ``,``, as ``StringValues.ToString()`` joins them."""
    grouped: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        names.setdefault(key, key if lower else name)
        grouped.setdefault(key, []).append(value)
    return {names[key]: ",".join(values) for key, values in grouped.items()}


def query_parameters(query: str) -> dict[str, str]:
    """``request.Query`` as the host sends it to the worker: repeated keys joined, empty values dropped."""
    joined = _joined(parse_qsl(query, keep_blank_values=True), lower=False)
    return {name: value for name, value in joined.items() if value}


class FunctionsRequestHandler(BaseHTTPRequestHandler):
    """Routes each request to a function, as the Functions host would."""

    protocol_version = "HTTP/1.1"
    # A response is buffered and goes out in one write when the request is done (the base class
    # flushes then); an interim "100 Continue" is flushed at once (:meth:`handle_expect_100`).
    wbufsize = -1
    # Should a response ever span writes, a keep-alive client's delayed ACK must not hold the
    # second back for ~40 ms behind Nagle's algorithm.
    disable_nagle_algorithm = True
    server: DevHost

    def handle_expect_100(self) -> bool:
        """Answer ``Expect: 100-continue`` at once: the client waits for it before sending the body."""
        going_on = super().handle_expect_100()
        self.wfile.flush()
        return going_on

    def do_request(self) -> None:
        started = time.perf_counter()
        self.invocation_id = "-"
        self.cors_headers: dict[str, str] = {}
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
        cors = self.server.cors
        origin = self.headers.get("Origin")
        if cors is not None and origin is not None:
            requested_method = self.headers.get("Access-Control-Request-Method")
            if self.command.upper() == "OPTIONS" and requested_method is not None:
                # CorsMiddleware answers every preflight itself, before routing.
                self._discard_body()
                requested = self.headers.get_all("Access-Control-Request-Headers") or []
                return self._send(204, cors.preflight(origin, requested_method, requested), b"")
            self.cors_headers = cors.actual(origin)
        found = self.server.route(url.path, self.command)
        if found is None:
            self._discard_body()
            return self._send(404, {}, b"")
        function, route_params = found
        if function.disabled:
            self._discard_body()
            return self._send(404, {}, b"")
        try:
            body = self._read_body()
        except BodyTooLarge:
            logger.error(
                "Executed 'Functions.%s' (Failed): Exception binding parameter '%s': Request body too large. "
                "The max request body size is %d bytes.",
                function.name,
                function.function.trigger.name,
                self.server.body_limit,
            )
            self.close_connection = True
            return self._send(500, {"Connection": "close"}, b"")
        except ValueError:
            self.close_connection = True
            return self._send(400, {"Connection": "close"}, b"")
        request = func.HttpRequest(
            method=self.command,
            url=f"http://{self.headers.get('Host', 'localhost')}{self.path}",
            headers=self._forwarded_headers(),
            params=query_parameters(url.query),
            route_params=route_params,
            body=body,
        )
        return self._invoke(function, request)

    def _forwarded_headers(self) -> dict[str, str]:
        """The request's headers as the host passes them on (``ToRpcHttp``).

        Names lower-cased, repeated headers joined with ``,``. Like Azure's front
        ends, the address of the connection's peer (``IP:port``) is appended to
        ``X-Forwarded-For``, after whatever the client sent.
        """
        pairs = [(n, v) for n, v in self.headers.items() if n.lower() != "x-forwarded-for"]
        headers = _joined(pairs, lower=True)
        host, port = self.client_address[:2]
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers["x-forwarded-for"] = ", ".join([*self.headers.get_all("X-Forwarded-For", []), peer])
        return headers

    def _invoke(self, function: HttpFunction, request: func.HttpRequest) -> int:
        invocation_id = str(uuid.uuid4())
        self.invocation_id = invocation_id
        try:
            invocation = function.function.invoke(request, invocation_id)
            if function.http_output is None:
                response = None
            elif function.http_output == "$return":
                response = encode_http_response(invocation.return_value)
            elif function.http_output in invocation.outputs:
                response = encode_http_response(invocation.outputs[function.http_output])
            else:
                response = None  # nothing set: the host's OkResult
        except Exception:
            logger.exception("Executed 'Functions.%s' (Failed, Id=%s)", function.name, invocation_id)
            return self._send(500, {}, b"")
        if response is None:
            return self._send(200, {}, b"")
        return self._send(response.status_code, response.headers, response.body, cookies=response.cookies)

    def _content_length(self) -> int | None:
        """The declared body length; ``None`` for a chunked body. :raises ValueError: a bad header."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return None
        value = self.headers.get("Content-Length")
        if value is None:
            return 0
        if not value.strip().isdigit():
            raise ValueError("bad Content-Length")
        return int(value)

    def _read_body(self) -> bytes:
        """The body the function gets: only a ``Content-Length`` one (``request.ContentLength > 0``).

        :raises BodyTooLarge: longer than the limit; it is left unread.
        """
        length = self._content_length()
        if length is None:
            self._read_chunked()
            logger.warning("A chunked request body is not passed to the function, as by the Functions host")
            return b""
        if length > self.server.body_limit:
            raise BodyTooLarge
        return self.rfile.read(length) if length > 0 else b""

    def _discard_body(self) -> None:
        """Consume a body no function reads; close the connection rather than read one too large."""
        try:
            length = self._content_length()
            if length is None:
                self._read_chunked()
            elif length > self.server.body_limit:
                self.close_connection = True
            elif length > 0:
                self.rfile.read(length)
        except (ValueError, BodyTooLarge):
            self.close_connection = True

    def _read_chunked(self) -> None:
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            total += size
            if total > self.server.body_limit:
                raise BodyTooLarge
            self.rfile.read(size)
            self.rfile.readline()

    def _send(
        self,
        status: int,
        headers: Mapping[str, str] | Sequence[tuple[str, str]],
        body: bytes,
        *,
        cookies: Sequence[str] = (),
    ) -> int:
        self.send_response(status)
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        for name, value in [*pairs, *self.cors_headers.items()]:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        for cookie in cookies:
            self.send_header("Set-Cookie", cookie)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Silence the default access log; :meth:`do_request` logs instead."""


class DevHost(ThreadingHTTPServer):
    """The HTTP server: one thread a request, like the Python worker's thread pool.

    Its queue and timer listeners (if any) run while it serves: :meth:`serve_forever`
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
        timers: TimerHost | None = None,
        *,
        body_limit: int = MAX_REQUEST_BYTES,
    ) -> None:
        # Before binding: a failed bind calls server_close.
        self.queues = queues or QueueHost([], QueuesOptions())
        self.timers = timers or TimerHost([])
        self._listeners_started = False
        self.cors = config.cors  # ValueError for '*' with credentials, as the policy builder throws
        super().__init__(address, FunctionsRequestHandler)
        self.functions = functions
        self.config = config
        self.body_limit = body_limit

    def route(self, path: str, method: str) -> tuple[HttpFunction, dict[str, str]] | None:
        """The first function, in the host's order, whose route and methods match."""
        for function in self.functions:
            if not function.accepts(method):
                continue
            values = function.match(path)
            if values is not None:
                return function, values
        return None

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Start the queue and timer listeners, then serve HTTP until :meth:`shutdown`."""
        if not self._listeners_started:
            self._listeners_started = True
            self.queues.start()
            self.timers.start()
        super().serve_forever(poll_interval)

    def server_close(self) -> None:
        """Stop the listeners (letting invocations in flight finish), then close the socket."""
        if self._listeners_started:
            self._listeners_started = False
            deadline = time.monotonic() + SHUTDOWN_TIMEOUT
            self.timers.stop_timers()
            self.queues.stop(SHUTDOWN_TIMEOUT)
            self.timers.stop(max(0.0, deadline - time.monotonic()))
        super().server_close()
