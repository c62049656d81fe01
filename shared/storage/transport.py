"""The storage clients' HTTP transport: azure-core's pipeline over the standard library's ``http.client``.

azure-core's default transport sends each call through ``requests`` and
``urllib3``; their per-call work (building and merging a ``requests`` request,
``urllib3``'s URL normalization, its pool lookups) measured about 1 ms of CPU
per storage call against Azurite, as much as the rest of the call. A login makes
two calls. :class:`PooledHttpTransport` sends the request azure-core has
prepared, as it is, on a kept-alive ``http.client`` connection.

What it keeps of the ``requests`` transport:

- timeouts: a connect timeout (TLS handshake included) and a read timeout per
  socket operation, both lowered by azure-core's per-call budget (the
  ``connection_timeout`` and ``read_timeout`` it passes with each request);
- azure-core's retries, through the same errors: :class:`ServiceRequestError`
  when the request could not be sent (refused, unreachable, TLS failed),
  :class:`ServiceResponseError` once it may have reached the server, and their
  ``Timeout`` subclasses;
- TLS with the certificate and host name checked, against the CA bundle
  ``requests`` would use (``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``, then
  ``certifi``'s);
- keep-alive connections, pooled per endpoint, each used by one thread at a
  time; a pooled connection the server has closed meanwhile is not reused.

What it does not do: proxies (a client whose endpoint the environment sends
through a proxy keeps azure-core's ``requests`` transport, see
:mod:`shared.storage.clients`), compressed responses (it asks for none), and
streamed bodies (the table and queue calls send and read whole bodies).
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
from typing import Any
from urllib.parse import urlsplit

from azure.core.configuration import ConnectionConfiguration
from azure.core.exceptions import (
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpTransport

# azure-core's own responses over an ``http.client`` response (it reads batch answers with them).
from azure.core.pipeline.transport._base import HttpClientTransportResponse
from azure.core.rest import HttpRequest as RestHttpRequest
from azure.core.rest._http_response_impl import RestHttpClientTransportResponse

__all__ = ["PooledHttpTransport", "ca_bundle"]

#: Idle connections kept per endpoint (more are closed when returned).
MAX_IDLE_CONNECTIONS = 16

_Endpoint = tuple[str, str, int]


def ca_bundle() -> str | None:
    """The CA bundle named for ``requests``: ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


class PooledHttpTransport(HttpTransport):  # type: ignore[type-arg]  # sends both request kinds
    """Sends azure-core requests on pooled ``http.client`` connections (see the module's docstring).

    :param connection_timeout: seconds to connect (and shake hands, for TLS).
    :param read_timeout: seconds any one read or write on the socket may wait.
    :param bundle: a CA bundle (file or folder) for ``https`` endpoints; ``None``: ``certifi``'s.
    """

    def __init__(self, *, connection_timeout: float, read_timeout: float, bundle: str | None = None) -> None:
        # azure-core's retry policy reads ``connection_config.timeout`` to fit it in the call's budget.
        self.connection_config = ConnectionConfiguration(
            connection_timeout=connection_timeout, read_timeout=read_timeout
        )
        self._bundle = bundle
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[_Endpoint, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        """Nothing to open: connections are made on first use."""

    def close(self) -> None:
        """Close every idle connection (one in use is closed when its call returns it)."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, request: Any, **kwargs: Any) -> Any:
        """Send ``request`` (an ``azure.core.rest`` or a legacy request) and read its whole response.

        :raises ServiceRequestError: the request could not be sent (its ``Timeout`` subclass: connecting
            took longer than the connect timeout).
        :raises ServiceResponseError: sending or reading failed after the request may have reached the
            server (its ``Timeout`` subclass: the server did not answer within the read timeout).
        """
        if getattr(request, "files", None):
            raise ValueError("this transport sends no multipart form files")
        connect_timeout = kwargs.get("connection_timeout") or self.connection_config.timeout
        read_timeout = kwargs.get("read_timeout") or self.connection_config.read_timeout
        url = urlsplit(request.url)
        endpoint: _Endpoint = (url.scheme.lower(), url.hostname or "", url.port or _default_port(url.scheme))
        target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        body = request.data
        headers = dict(request.headers)
        if isinstance(body, str):
            # As requests does: UTF-8, and the length in bytes (azure-core counts a text body's characters).
            body = body.encode("utf-8")
            headers = {name: value for name, value in headers.items() if name.lower() != "content-length"}
        connection, sock = self._pooled(endpoint) or self._connect(endpoint, connect_timeout)
        try:
            sock.settimeout(read_timeout)
            connection.request(request.method, target, body=body, headers=headers)
            raw = connection.getresponse()
            if isinstance(request, RestHttpRequest):
                response: Any = RestHttpClientTransportResponse(  # type: ignore[no-untyped-call]
                    request=request, internal_response=raw
                )
                response.read()
            else:
                response = HttpClientTransportResponse(request, raw)  # type: ignore[no-untyped-call]
                response.body()
        except TimeoutError as error:
            connection.close()
            raise ServiceResponseTimeoutError(error, error=error) from error
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise ServiceResponseError(error, error=error) from error
        except BaseException:
            connection.close()
            raise
        if raw.will_close:
            connection.close()
        else:
            self._return(endpoint, connection)
        return response

    def _pooled(self, endpoint: _Endpoint) -> tuple[http.client.HTTPConnection, socket.socket] | None:
        """An idle connection to ``endpoint`` the server has not closed (and its socket), or ``None``."""
        while True:
            with self._lock:
                idle = self._idle.get(endpoint)
                if not idle:
                    return None
                connection = idle.pop()
            sock = connection.sock
            if sock is not None and not _readable(sock):
                return connection, sock
            connection.close()  # closed by the server (or it sent what nobody asked for)

    def _return(self, endpoint: _Endpoint, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(endpoint, [])
            if len(idle) < MAX_IDLE_CONNECTIONS:
                idle.append(connection)
                return
        connection.close()

    def _connect(
        self, endpoint: _Endpoint, timeout: float
    ) -> tuple[http.client.HTTPConnection, socket.socket]:
        scheme, host, port = endpoint
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls_context())
        elif scheme == "http":
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        else:
            raise ServiceRequestError(f"unsupported URL scheme {scheme!r}")
        try:
            connection.connect()
        except TimeoutError as error:
            connection.close()
            raise ServiceRequestTimeoutError(error, error=error) from error
        except OSError as error:  # refused, unreachable, unknown host, TLS refused or certificate wrong
            connection.close()
            raise ServiceRequestError(error, error=error) from error
        sock: socket.socket = connection.sock
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return connection, sock

    def _tls_context(self) -> ssl.SSLContext:
        """Certificates and host names checked, against the bundle given or ``certifi``'s (made once)."""
        if self._tls is None:
            bundle = self._bundle
            if bundle is None:
                import certifi  # noqa: PLC0415 - only for https endpoints

                bundle = certifi.where()
            if os.path.isdir(bundle):
                self._tls = ssl.create_default_context(capath=bundle)
            else:
                self._tls = ssl.create_default_context(cafile=bundle)
        return self._tls


def _default_port(scheme: str) -> int:
    return 443 if scheme.lower() == "https" else 80


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read now: on an idle connection, the server's close."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])
