"""Sending mail: SMTP against a real aiosmtpd server, ACS against a local HTTPS stand-in of its REST API."""

from __future__ import annotations

import email
import email.policy
import json
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from azure.core.credentials import AccessToken

from shared.mail.transport import (
    AcsTransport,
    MailDeliveryFailed,
    OutgoingMail,
    SmtpTransport,
    transport_for,
)
from shared.settings.mail import AcsSettings, MailSettings, SmtpSecurity, SmtpSettings
from tests.tls import Certificate, make_certificate

SENDER = "noreply@auth.example.com"
RECIPIENT = "nina@example.org"
ACS_SCOPE = "https://communication.azure.com//.default"


def outgoing(**changes: str) -> OutgoingMail:
    """A mail as the courier composes it, with non-ASCII text and an 8-digit code."""
    fields = {
        "sender": SENDER,
        "to": RECIPIENT,
        "subject": "Réinitialiser your Birdwatch password",
        "text": "Hello,\n\nenter this code:\n\n04817392\n\nGrüße, Birdwatch\n",
        "html": "<!DOCTYPE html><html><body><p>Grüße</p><p>04817392</p></body></html>\n",
    }
    fields.update(changes)
    return OutgoingMail(**fields)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """The certificate the local servers present."""
    return make_certificate(tmp_path_factory.mktemp("tls"), "mail-test")


@pytest.fixture
def trusted(certificate: Certificate, monkeypatch: pytest.MonkeyPatch) -> Certificate:
    """Make ``ssl.create_default_context()`` (and requests) trust the test certificate, and only it."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate.cert))
    return certificate


# --- a real SMTP server -----------------------------------------------------------------------------


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps every envelope, and whether it came over STARTTLS."""

    envelopes: list[Envelope] = field(default_factory=list)
    over_starttls: list[bool] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        self.over_starttls.append(session.ssl is not None)
        return "250 OK queued"

    def message(self) -> EmailMessage:
        """The one mail received, parsed."""
        assert len(self.envelopes) == 1
        content = self.envelopes[0].original_content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class Authenticator:
    """Accepts one username and password; records every attempt."""

    def __init__(self, inbox: Inbox, username: str, password: str) -> None:
        self.inbox, self.username, self.password = inbox, username, password

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.inbox.logins.append((auth_data.login, auth_data.password))
        ok = auth_data.login == self.username.encode() and auth_data.password == self.password.encode()
        # handled=False: aiosmtpd itself answers a failure with 535.
        return AuthResult(success=ok, handled=False)


StartServer = Callable[..., tuple[Inbox, int]]


@pytest.fixture
def smtp_server() -> Iterator[StartServer]:
    """Start aiosmtpd servers on free loopback ports (keyword arguments go to ``SMTP``); stop them after."""
    controllers: list[Controller] = []

    def start(*, ssl_context: ssl.SSLContext | None = None, **smtp_options: Any) -> tuple[Inbox, int]:
        inbox = Inbox()
        if "credentials" in smtp_options:
            username, password = smtp_options.pop("credentials")
            smtp_options["authenticator"] = Authenticator(inbox, username, password)
        port = free_port()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            ssl_context=ssl_context,
            server_hostname="localhost",
            ready_timeout=5,
            **smtp_options,
        )
        controller.start()
        controllers.append(controller)
        return inbox, port

    yield start
    for controller in controllers:
        controller.stop()


def smtp(port: int, security: SmtpSecurity, *, timeout: float = 10, **changes: Any) -> SmtpTransport:
    """A transport to the local server on ``port``."""
    settings = SmtpSettings(host="127.0.0.1", port=port, security=security, **changes)
    return SmtpTransport(settings, timeout=timeout)


def assert_is_the_mail(message: EmailMessage, mail: OutgoingMail) -> None:
    """The received message is ``mail`` as multipart/alternative: text first, then HTML."""
    assert message.get_content_type() == "multipart/alternative"
    assert message["From"] == mail.sender
    assert message["To"] == mail.to
    assert message["Subject"] == mail.subject
    assert message["Date"]
    assert message["Message-ID"].endswith("@auth.example.com>")
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in parts)
    # On the wire every line ends in CRLF.
    assert [part.get_content().replace("\r\n", "\n") for part in parts] == [mail.text, mail.html]
    assert "04817392" in parts[0].get_content().splitlines()


# --- SMTP tests -------------------------------------------------------------------------------------


def test_plain_smtp_delivers_multipart_alternative(smtp_server: StartServer) -> None:
    """Security ``none`` hands the mail to a local catcher: right envelope, headers and both parts."""
    inbox, port = smtp_server()
    mail = outgoing()
    smtp(port, SmtpSecurity.NONE).send(mail)
    assert inbox.envelopes[0].mail_from == SENDER
    assert inbox.envelopes[0].rcpt_tos == [RECIPIENT]
    assert_is_the_mail(inbox.message(), mail)


def test_mime_is_seven_bit_clean() -> None:
    """The MIME form of a non-ASCII mail is pure ASCII, so any relay can carry it."""
    mime = outgoing().to_mime()
    raw = mime.as_bytes()
    assert raw.isascii()
    assert b"\r\n" in raw
    assert mime["Auto-Submitted"] == "auto-generated"


def test_starttls_upgrades_and_verifies(smtp_server: StartServer, trusted: Certificate) -> None:
    """``starttls`` upgrades the connection with a verified certificate before sending."""
    inbox, port = smtp_server(tls_context=trusted.server_context(), require_starttls=True)
    mail = outgoing()
    smtp(port, SmtpSecurity.STARTTLS).send(mail)
    assert inbox.over_starttls == [True]
    assert_is_the_mail(inbox.message(), mail)


def test_starttls_missing_fails_instead_of_going_plain(
    smtp_server: StartServer, trusted: Certificate
) -> None:
    """A server that does not offer STARTTLS gets nothing: the send fails."""
    inbox, port = smtp_server()
    with pytest.raises(MailDeliveryFailed, match="does not offer STARTTLS") as failure:
        smtp(port, SmtpSecurity.STARTTLS).send(outgoing())
    assert failure.value.transport == f"SMTP 127.0.0.1:{port}"
    assert inbox.envelopes == []


def test_starttls_with_untrusted_certificate_fails(
    smtp_server: StartServer, certificate: Certificate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate the client does not trust stops the send; nothing goes out unprotected."""
    other = make_certificate(tmp_path, "someone-else")
    monkeypatch.setenv("SSL_CERT_FILE", str(other.cert))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    inbox, port = smtp_server(tls_context=certificate.server_context())
    with pytest.raises(MailDeliveryFailed, match="certificate is not trusted"):
        smtp(port, SmtpSecurity.STARTTLS).send(outgoing())
    assert inbox.envelopes == []


def test_implicit_tls(smtp_server: StartServer, trusted: Certificate) -> None:
    """``tls`` speaks TLS from the first byte (port 465 style)."""
    inbox, port = smtp_server(ssl_context=trusted.server_context())
    mail = outgoing()
    smtp(port, SmtpSecurity.TLS).send(mail)
    assert_is_the_mail(inbox.message(), mail)


def test_implicit_tls_against_a_plain_server_fails(smtp_server: StartServer, trusted: Certificate) -> None:
    """``tls`` against a server that speaks plain SMTP fails in the handshake."""
    inbox, port = smtp_server()
    with pytest.raises(MailDeliveryFailed, match="the TLS handshake failed"):
        smtp(port, SmtpSecurity.TLS, timeout=2).send(outgoing())
    assert inbox.envelopes == []


def test_login_over_plain_connection(smtp_server: StartServer) -> None:
    """With a username the transport logs in (here on a plain catcher that allows it)."""
    inbox, port = smtp_server(credentials=("mailer", "s3cret-pass"), auth_require_tls=False)
    smtp(port, SmtpSecurity.NONE, username="mailer", password="s3cret-pass").send(outgoing())
    assert inbox.logins == [(b"mailer", b"s3cret-pass")]
    assert len(inbox.envelopes) == 1


def test_login_after_starttls(smtp_server: StartServer, trusted: Certificate) -> None:
    """A server that allows AUTH only over TLS gets the login after STARTTLS."""
    inbox, port = smtp_server(
        tls_context=trusted.server_context(), require_starttls=True, credentials=("mailer", "pw-42")
    )
    smtp(port, SmtpSecurity.STARTTLS, username="mailer", password="pw-42").send(outgoing())
    assert inbox.logins == [(b"mailer", b"pw-42")]
    assert inbox.over_starttls == [True]


def test_wrong_password_fails_without_revealing_it(smtp_server: StartServer) -> None:
    """A refused login is a delivery failure whose message names the transport, not the password."""
    inbox, port = smtp_server(credentials=("mailer", "right-pass"), auth_require_tls=False)
    transport = smtp(port, SmtpSecurity.NONE, username="mailer", password="wrong-pass-7")
    with pytest.raises(MailDeliveryFailed, match=r"refused the login \(535\)") as failure:
        transport.send(outgoing())
    assert "wrong-pass-7" not in str(failure.value)
    assert "wrong-pass-7" not in repr(transport)
    assert inbox.envelopes == []


def test_server_down_fails_quickly() -> None:
    """A closed port is a delivery failure at once, not a hang."""
    port = free_port()
    started = time.monotonic()
    with pytest.raises(MailDeliveryFailed, match="connection was refused") as failure:
        smtp(port, SmtpSecurity.STARTTLS).send(outgoing())
    assert time.monotonic() - started < 2
    assert str(failure.value).startswith(f"SMTP 127.0.0.1:{port}: ")


def test_line_breaks_in_headers_are_refused() -> None:
    """A header value with a line break never becomes a mail (it would forge headers)."""
    for name in ("sender", "to", "subject"):
        with pytest.raises(ValueError, match=name):
            outgoing(**{name: "x@example.com\r\nBcc: victim@example.com"})


def test_transport_for_picks_the_configured_transport() -> None:
    """No transport without settings; SMTP settings give SMTP, ACS settings give ACS."""
    assert transport_for(MailSettings()) is None
    smtp_settings = SmtpSettings(host="mail.example.com")
    assert isinstance(transport_for(MailSettings(transport=smtp_settings, sender=SENDER)), SmtpTransport)
    acs = transport_for(
        MailSettings(transport=AcsSettings("https://res.communication.azure.com"), sender=SENDER)
    )
    assert isinstance(acs, AcsTransport)
    acs.close()


# --- a local stand-in for the ACS Email REST API ----------------------------------------------------


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class AcsStandIn:
    """HTTPS ``POST /emails:send`` and ``GET /emails/operations/{id}`` as the service answers them.

    ``running_polls`` status polls answer ``Running`` before the final ``status``;
    ``send_status`` other than 202 refuses the send itself.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.received: list[Received] = []
        self.status = "Succeeded"
        self.running_polls = 0
        self.send_status = 202
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def do_POST(self) -> None:
                stand_in.handle(self)

            def do_GET(self) -> None:
                stand_in.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        self.endpoint = f"https://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        self.received.append(
            Received(request.command, url.path, parse_qs(url.query), dict(request.headers.items()), body)
        )
        api_version = parse_qs(url.query).get("api-version", [""])[0]
        if request.command == "POST" and url.path == "/emails:send":
            if self.send_status != 202:
                error = {"error": {"code": "Denied", "message": "not allowed"}}
                return self.answer(request, self.send_status, error)
            operation = secrets.token_hex(16)
            location = f"{self.endpoint}/emails/operations/{operation}?api-version={api_version}"
            headers = {"Operation-Location": location, "operation-id": operation, "Retry-After": "1"}
            return self.answer(request, 202, {"id": operation, "status": "Running"}, headers)
        if request.command == "GET" and url.path.startswith("/emails/operations/"):
            operation = url.path.rsplit("/", 1)[1]
            polls = sum(1 for r in self.received if r.path == url.path)
            if polls <= self.running_polls:
                return self.answer(request, 200, {"id": operation, "status": "Running"}, {"Retry-After": "1"})
            document: dict[str, Any] = {"id": operation, "status": self.status}
            if self.status == "Failed":
                document["error"] = {"code": "EmailDroppedAllRecipientsSuppressed", "message": "suppressed"}
            return self.answer(request, 200, document)
        return self.answer(request, 404, {"error": {"code": "NotFound", "message": "no such route"}})

    @staticmethod
    def answer(
        request: BaseHTTPRequestHandler, status: int, document: object, headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(document).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(payload)


class StaticCredential:
    """A real ``TokenCredential``: one bearer token, and the scopes it was asked for."""

    def __init__(self) -> None:
        self.token = "stand-in-" + secrets.token_urlsafe(16)
        self.scopes: list[tuple[str, ...]] = []

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture
def acs(trusted: Certificate) -> Iterator[AcsStandIn]:
    """A running ACS stand-in whose certificate the client trusts (``REQUESTS_CA_BUNDLE``)."""
    stand_in = AcsStandIn(trusted.server_context())
    yield stand_in
    stand_in.close()


@pytest.fixture
def credential() -> StaticCredential:
    """The token credential the ACS transport signs in with."""
    return StaticCredential()


@pytest.fixture
def acs_transport(acs: AcsStandIn, credential: StaticCredential) -> Iterator[AcsTransport]:
    """An ACS transport pointed at the stand-in."""
    transport = AcsTransport(AcsSettings(acs.endpoint), credential, wait_seconds=5)
    yield transport
    transport.close()


# --- ACS tests --------------------------------------------------------------------------------------


def test_acs_sends_and_waits_for_success(
    acs: AcsStandIn, acs_transport: AcsTransport, credential: StaticCredential
) -> None:
    """The send is POSTed with a bearer token and the mail as JSON, then polled until it succeeded."""
    mail = outgoing()
    acs_transport.send(mail)
    post, poll = acs.received
    assert (post.method, post.path) == ("POST", "/emails:send")
    assert post.query == {"api-version": ["2025-09-01"]}
    assert post.headers["Authorization"] == f"Bearer {credential.token}"
    assert post.headers["Content-Type"].startswith("application/json")
    assert json.loads(post.body) == {
        "senderAddress": SENDER,
        "recipients": {"to": [{"address": RECIPIENT}]},
        "content": {"subject": mail.subject, "plainText": mail.text, "html": mail.html},
    }
    assert poll.method == "GET"
    assert poll.path.startswith("/emails/operations/")
    assert poll.query == {"api-version": ["2025-09-01"]}
    assert poll.headers["Authorization"] == f"Bearer {credential.token}"
    assert credential.scopes
    assert all(scopes == (ACS_SCOPE,) for scopes in credential.scopes)


def test_acs_client_is_reused(acs: AcsStandIn, acs_transport: AcsTransport) -> None:
    """One transport sends many mails with its one client."""
    acs_transport.send(outgoing(to="a@example.org"))
    acs_transport.send(outgoing(to="b@example.org"))
    posts = [json.loads(r.body) for r in acs.received if r.method == "POST"]
    assert [post["recipients"]["to"][0]["address"] for post in posts] == ["a@example.org", "b@example.org"]


def test_acs_polls_while_running(acs: AcsStandIn, acs_transport: AcsTransport) -> None:
    """A send still running is polled again (after the service's ``Retry-After``) until it succeeds."""
    acs.running_polls = 1
    acs_transport.send(outgoing())
    assert [r.method for r in acs.received] == ["POST", "GET", "GET"]


def test_acs_failed_status_is_a_delivery_failure(acs: AcsStandIn, acs_transport: AcsTransport) -> None:
    """A send the service reports as Failed raises, naming the service's error code."""
    acs.status = "Failed"
    with pytest.raises(MailDeliveryFailed, match="reported the send as failed") as failure:
        acs_transport.send(outgoing())
    assert failure.value.transport == "ACS 127.0.0.1"
    assert "EmailDroppedAllRecipientsSuppressed" in failure.value.failure
    assert "04817392" not in str(failure.value)


def test_acs_refused_send_is_a_delivery_failure(acs: AcsStandIn, acs_transport: AcsTransport) -> None:
    """A send the service refuses outright (403) raises with its status; nothing is polled."""
    acs.send_status = 403
    with pytest.raises(MailDeliveryFailed, match=r"answered 403 \(Denied\)"):
        acs_transport.send(outgoing())
    assert [r.method for r in acs.received] == ["POST"]


def test_acs_refused_credentials_are_a_delivery_failure(acs: AcsStandIn, acs_transport: AcsTransport) -> None:
    """A 401 from the service is a delivery failure that says the credentials were refused."""
    acs.send_status = 401
    with pytest.raises(MailDeliveryFailed, match="refused the app's credentials"):
        acs_transport.send(outgoing())


def test_acs_wait_is_bounded(acs: AcsStandIn, credential: StaticCredential) -> None:
    """A send without a final status in time is a delivery failure, not an endless wait."""
    acs.running_polls = 1
    transport = AcsTransport(AcsSettings(acs.endpoint), credential, wait_seconds=0.3)
    started = time.monotonic()
    try:
        with pytest.raises(MailDeliveryFailed, match=r"no final status within 0\.3 s"):
            transport.send(outgoing())
        assert time.monotonic() - started < 1
        # Let the SDK's poller thread finish its polls before the stand-in goes away.
        deadline = time.monotonic() + 5
        while sum(r.method == "GET" for r in acs.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        transport.close()


def test_acs_service_down_is_a_delivery_failure(credential: StaticCredential, trusted: Certificate) -> None:
    """An endpoint nobody listens on is a delivery failure after the client's few retries."""
    transport = AcsTransport(AcsSettings(f"https://127.0.0.1:{free_port()}"), credential)
    try:
        with pytest.raises(MailDeliveryFailed, match="could not be reached"):
            transport.send(outgoing())
    finally:
        transport.close()
