"""The storage clients' transport (``http.client`` under azure-core) against small local servers.

What it must keep of azure-core's ``requests`` transport: kept-alive connections
that are dropped once the server closes them, the errors azure-core's retries
tell apart, the timeouts, the body's bytes, and TLS checked against the named
CA bundle. The table and queue calls themselves run through it in every test
that talks to Azurite.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from azure.core.exceptions import (
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseTimeoutError,
)
from azure.core.rest import HttpRequest
from azure.identity import DefaultAzureCredential

from shared.settings import StorageSettings
from shared.settings.mail import QueueSettings
from shared.storage.clients import _new_queue_client, http_transport, new_table_client
from shared.storage.transport import PooledHttpTransport
from tests.tls import make_certificate
from tools.emulators.azurite import free_port


class Recorder(BaseHTTPRequestHandler):
    """Echoes the request body; counts the connections it was given; closes them when told to."""

    protocol_version = "HTTP/1.1"
    server: EchoServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        # Closing without saying so (no "Connection: close"): the client finds out on its next request.
        self.close_connection = self.server.close_after_each

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class EchoServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, close_after_each: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), Recorder)
        self.close_after_each = close_after_each
        self.connections = 0
        self.lock = threading.Lock()
        self.closed = threading.Semaphore(0)  # released each time the server has closed a connection

    def shutdown_request(self, request: object) -> None:
        super().shutdown_request(request)  # type: ignore[arg-type]
        self.closed.release()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/echo"


@contextmanager
def serving(server: EchoServer) -> Iterator[EchoServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def transport(**options: float) -> PooledHttpTransport:
    return PooledHttpTransport(
        connection_timeout=options.get("connect", 3), read_timeout=options.get("read", 5), bundle=None
    )


def test_one_connection_is_kept_alive_across_calls() -> None:
    with serving(EchoServer()) as server, transport() as sender:
        for n in range(3):
            response = sender.send(HttpRequest("POST", server.url, content=f"call {n}".encode()))
            assert (response.status_code, response.content) == (200, f"call {n}".encode())
        assert server.connections == 1


def test_a_connection_the_server_closed_is_not_reused() -> None:
    """The server closes each connection after answering, without a header saying so: no call fails."""
    with serving(EchoServer(close_after_each=True)) as server, transport() as sender:
        for n in range(3):
            response = sender.send(HttpRequest("POST", server.url, content=f"call {n}".encode()))
            assert response.content == f"call {n}".encode()
            assert server.closed.acquire(timeout=10)  # closed (before the next call, as when it idled out)
        assert server.connections == 3


def test_a_text_body_is_sent_as_utf8_with_its_length_in_bytes() -> None:
    """azure-core hands bodies over as text, with a Content-Length in characters; any character goes."""
    text = '{"DisplayName": "Zoë ✓ 山田"}'
    with serving(EchoServer()) as server, transport() as sender:
        request = HttpRequest("POST", server.url, content=text)
        assert request.headers["Content-Length"] == str(len(text))  # characters, not bytes
        assert sender.send(request).content == text.encode("utf-8")


def test_a_refused_connection_is_a_request_error() -> None:
    """Nothing reached a server: azure-core may retry it like any connection error."""
    with transport() as sender, pytest.raises(ServiceRequestError):
        sender.send(HttpRequest("GET", f"http://127.0.0.1:{free_port()}/"))


def test_a_server_that_never_answers_is_a_response_timeout() -> None:
    """Connected, request sent, no answer: a response timeout after the read timeout, not a hang."""
    with socket.create_server(("127.0.0.1", 0)) as silent, transport(read=0.5) as sender:
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(ServiceResponseTimeoutError):
            sender.send(HttpRequest("GET", f"http://127.0.0.1:{port}/"))
        assert time.monotonic() - started < 5


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further connection attempts unanswered."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as full:
        port = full.getsockname()[1]
        queued = socket.create_connection(("127.0.0.1", port))  # fills the queue (nobody accepts)
        try:
            yield port
        finally:
            queued.close()


def test_the_call_budget_lowers_the_connect_timeout() -> None:
    """azure-core passes what is left of a call's budget as ``connection_timeout``; it bounds connecting."""
    with unanswered_port() as port, transport(connect=30) as sender:
        started = time.monotonic()
        with pytest.raises(ServiceRequestTimeoutError):
            sender.send(HttpRequest("GET", f"http://127.0.0.1:{port}/"), connection_timeout=0.5)
        assert time.monotonic() - started < 5


# TLS: a server with a certificate for "localhost" alone, signed by itself.


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    certificate = make_certificate(tmp_path, "storage-test", hosts=("localhost",))
    server = EchoServer()
    server.socket = certificate.server_context().wrap_socket(server.socket, server_side=True)
    with serving(server):
        yield server.server_address[1], certificate.cert


def test_tls_is_checked_against_the_named_bundle(tls_server: tuple[int, Path]) -> None:
    port, certificate = tls_server
    trusting = PooledHttpTransport(connection_timeout=3, read_timeout=5, bundle=str(certificate))
    with trusting:
        response = trusting.send(HttpRequest("POST", f"https://localhost:{port}/echo", content=b"secret"))
        assert response.content == b"secret"


def test_tls_refuses_a_certificate_no_bundle_vouches_for(tls_server: tuple[int, Path]) -> None:
    """certifi's bundle (no bundle named) does not know the server's certificate: nothing is sent."""
    port, _ = tls_server
    with transport() as sender, pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        sender.send(HttpRequest("POST", f"https://localhost:{port}/echo", content=b"secret"))


def test_tls_refuses_a_certificate_for_another_name(tls_server: tuple[int, Path]) -> None:
    """The certificate names localhost; 127.0.0.1 is another name, even with the bundle trusting it."""
    port, certificate = tls_server
    trusting = PooledHttpTransport(connection_timeout=3, read_timeout=5, bundle=str(certificate))
    with trusting, pytest.raises(ServiceRequestError, match=r"match|mismatch"):
        trusting.send(HttpRequest("POST", f"https://127.0.0.1:{port}/echo", content=b"secret"))


def test_the_clients_check_tls_against_requests_ca_bundle(
    tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, as ``requests`` reads them, for the clients' transport."""
    port, certificate = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("CURL_CA_BUNDLE", str(certificate))
    with http_transport(5) as sender:
        response = sender.send(HttpRequest("POST", f"https://localhost:{port}/echo", content=b"hi"))
        assert response.content == b"hi"


def test_identity_based_clients_sign_in_and_send_on_the_pooled_transport() -> None:
    """An endpoint, no connection string: DefaultAzureCredential, the same transport (nothing is sent)."""
    table = new_table_client(StorageSettings("Accounts", endpoint="https://account.table.core.windows.net"))
    queue = _new_queue_client(QueueSettings("mail", endpoint="https://account.queue.core.windows.net"))
    for client, url in (
        (table, "https://account.table.core.windows.net"),
        (queue, "https://account.queue.core.windows.net"),
    ):
        with client:
            assert client.url.startswith(url)
            assert isinstance(client.credential, DefaultAzureCredential)
            assert isinstance(client._client._client._pipeline._transport, PooledHttpTransport)
