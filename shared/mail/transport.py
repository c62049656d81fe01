"""Sending a composed mail: over SMTP, or with Azure Communication Services Email.

:func:`transport_for` picks the transport the settings name. Every transport
raises :class:`MailDeliveryFailed` when it cannot hand a mail over; the mail
function lets that escape, so the Functions host retries the queue message.

- :class:`SmtpTransport` opens a new connection for every mail (a mail
  function sends few mails, and a fresh connection has no stale state to
  recover from), with a 10 s timeout on each network operation. ``starttls``
  refuses to go on when the server does not offer STARTTLS; it never falls
  back to plain text.
- :class:`AcsTransport` creates its ``EmailClient`` once, signs in with the
  app's identity (``DefaultAzureCredential``), and waits a bounded time for the
  service to report the send as succeeded.
"""

from __future__ import annotations

import contextlib
import email.policy
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from azure.communication.email import EmailClient
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.polling.base_polling import OperationFailed

from shared.settings.mail import AcsSettings, MailSettings, SmtpSecurity, SmtpSettings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "ACS_CLIENT_OPTIONS",
    "ACS_WAIT_SECONDS",
    "SMTP_TIMEOUT_SECONDS",
    "AcsTransport",
    "MailDeliveryFailed",
    "OutgoingMail",
    "SmtpTransport",
    "Transport",
    "transport_for",
]

#: The timeout of each SMTP network operation (connect, each command).
SMTP_TIMEOUT_SECONDS = 10.0
#: How long :class:`AcsTransport` waits for the service's final status of a send.
ACS_WAIT_SECONDS = 30.0
#: The ACS client's network settings: short timeouts, two retries, and a poll
#: every 2 s unless the service asks for another interval (``Retry-After``).
ACS_CLIENT_OPTIONS: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 10,
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 2,
    "timeout": 20,
    "polling_interval": 2,
}


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """One composed mail to one recipient.

    :raises ValueError: (on construction) ``sender``, ``to`` or ``subject``
        contains a line break, which would forge headers.
    """

    sender: str
    to: str
    subject: str
    text: str
    html: str

    def __post_init__(self) -> None:
        for name in ("sender", "to", "subject"):
            value: str = getattr(self, name)
            if "\r" in value or "\n" in value:
                raise ValueError(f"the mail's {name} contains a line break")

    def to_mime(self) -> EmailMessage:
        """The mail as a MIME message: ``multipart/alternative`` with a text part, then an HTML part.

        Both parts are UTF-8, quoted-printable (so the message is 7-bit clean
        for any relay). The ``Message-ID`` is made in the sender's domain.
        """
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = self.sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=_domain_of(self.sender))
        # RFC 3834: an automatic mail; vacation responders should not answer it.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.text, subtype="plain", charset="utf-8", cte="quoted-printable")
        message.add_alternative(self.html, subtype="html", charset="utf-8", cte="quoted-printable")
        return message


class MailDeliveryFailed(Exception):
    """A transport could not hand a mail over; the queue message is retried.

    The message names the transport and the kind of failure (``SMTP
    mail.example.com:587: the server refused the login (535)``), never
    credentials or the mail's content. Not a
    :class:`~shared.errors.ServiceError`: no HTTP client ever sees it.
    """

    def __init__(self, transport: str, failure: str) -> None:
        super().__init__(f"{transport}: {failure}")
        #: Which transport failed (``SMTP host:port``, ``ACS host``).
        self.transport = transport
        #: What went wrong, in a few words.
        self.failure = failure


class Transport(Protocol):
    """Something that sends mail."""

    def send(self, mail: OutgoingMail) -> None:
        """Hand ``mail`` over for delivery.

        :raises MailDeliveryFailed: it could not be handed over.
        """
        ...


class SmtpTransport:
    """Sends over SMTP with :mod:`smtplib`: a new connection per mail, a 10 s timeout.

    ``starttls`` connects in plain text and upgrades with STARTTLS, verifying
    the server's certificate and name; a server that does not offer STARTTLS
    fails the send. ``tls`` speaks TLS from the first byte. ``none`` sends in
    plain text (a local mail catcher only). With a username it logs in after
    securing the connection.
    """

    def __init__(self, settings: SmtpSettings, *, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self._settings = settings
        self._timeout = timeout
        self.name = f"SMTP {settings.host}:{settings.port}"

    def __repr__(self) -> str:
        return f"SmtpTransport({self.name}, {self._settings.security.value})"

    def send(self, mail: OutgoingMail) -> None:
        """Send ``mail`` to its one recipient.

        :raises MailDeliveryFailed: the server could not be reached, the TLS
            handshake or certificate check failed, the server does not offer
            STARTTLS (``starttls``), it refused the login, the sender, the
            recipient or the message, or it did not answer in time.
        """
        message = mail.to_mime()
        try:
            smtp = self._connect()
            try:
                if self._settings.username is not None:
                    smtp.login(self._settings.username, self._settings.password or "")
                smtp.send_message(message, from_addr=mail.sender, to_addrs=[mail.to])
            except BaseException:
                smtp.close()
                raise
            # The mail is accepted; a failing goodbye must not make the queue send it again.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
        except MailDeliveryFailed:
            raise
        except smtplib.SMTPException as error:  # before OSError: its subclass
            raise MailDeliveryFailed(self.name, _smtp_failure(error)) from None
        except OSError as error:  # ssl.SSLError included
            raise MailDeliveryFailed(self.name, _network_failure(error)) from None

    def _connect(self) -> smtplib.SMTP:
        """Open a connection, secured as the settings say (and ready for EHLO).

        :raises MailDeliveryFailed: ``starttls``, and the server does not offer STARTTLS.
        :raises smtplib.SMTPException, OSError: anything else went wrong.
        """
        settings = self._settings
        if settings.security is SmtpSecurity.TLS:
            return smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=self._timeout, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=self._timeout)
        if settings.security is SmtpSecurity.STARTTLS:
            try:
                smtp.ehlo()
                if not smtp.has_extn("starttls"):
                    raise MailDeliveryFailed(self.name, "the server does not offer STARTTLS")
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            except BaseException:
                smtp.close()
                raise
        return smtp


class AcsTransport:
    """Sends with Azure Communication Services Email.

    The ``EmailClient`` is created once per transport (no request is sent
    until the first mail). Without ``credential``, ``DefaultAzureCredential``
    signs in: the app's managed identity on Azure (``AZURE_CLIENT_ID`` picks a
    user-assigned one), a developer's Azure CLI login locally. The identity
    needs permission to send mail on the Communication Services resource.

    A send the service has accepted but not finished within ``wait_seconds``
    counts as failed, although it may still go out: the queue's retry then
    sends a second mail, whose fresh code replaces the first one's.
    """

    def __init__(
        self,
        settings: AcsSettings,
        credential: TokenCredential | None = None,
        *,
        wait_seconds: float = ACS_WAIT_SECONDS,
    ) -> None:
        if credential is None:
            # Imported only here: an SMTP deployment never loads azure-identity for mail.
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415

            credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        self._client = EmailClient(settings.endpoint, credential, **ACS_CLIENT_OPTIONS)
        self._wait_seconds = wait_seconds
        self.name = f"ACS {urlsplit(settings.endpoint).hostname or settings.endpoint}"

    def __repr__(self) -> str:
        return f"AcsTransport({self.name})"

    def send(self, mail: OutgoingMail) -> None:
        """Queue ``mail`` with the service and wait until it reports the send as succeeded.

        :raises MailDeliveryFailed: the service could not be reached, refused
            the credentials or the request, reported the send as failed or
            canceled, or gave no final status within ``wait_seconds``
            (:data:`ACS_WAIT_SECONDS`).
        """
        message: dict[str, Any] = {
            "senderAddress": parseaddr(mail.sender)[1] or mail.sender,
            "recipients": {"to": [{"address": mail.to}]},
            "content": {"subject": mail.subject, "plainText": mail.text, "html": mail.html},
        }
        try:
            poller = self._client.begin_send(message)
            poller.wait(timeout=self._wait_seconds)
            if not poller.done():
                # The SDK's poller thread keeps polling in the background and then ends.
                raise MailDeliveryFailed(self.name, f"no final status within {self._wait_seconds:g} s")
            result = poller.result()
        except AzureError as error:
            raise MailDeliveryFailed(self.name, _acs_failure(error)) from None
        status = result.get("status") if isinstance(result, Mapping) else None
        if not isinstance(status, str) or status.lower() != "succeeded":
            raise MailDeliveryFailed(self.name, f"the service reported the send as {status}")

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()


def transport_for(settings: MailSettings) -> Transport | None:
    """The transport the settings configure, or ``None`` when mail is not configured."""
    match settings.transport:
        case SmtpSettings() as smtp:
            return SmtpTransport(smtp)
        case AcsSettings() as acs:
            return AcsTransport(acs)
        case _:
            return None


def _domain_of(sender: str) -> str:
    """The domain of a sender address (``"App <noreply@example.com>"`` works too), for ``Message-ID``."""
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def _smtp_failure(error: smtplib.SMTPException) -> str:
    """A few words for what went wrong, without the server's text (it may echo addresses)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in error.recipients.values()})
        return f"the server refused the recipient ({', '.join(map(str, codes))})"
    if isinstance(error, smtplib.SMTPResponseException):
        what = next(words for kind, words in _SMTP_REFUSALS if isinstance(error, kind))
        return f"{what} ({error.smtp_code})"
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return f"the server lacks an extension the mail needs: {error}"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    return type(error).__name__


def _network_failure(error: OSError) -> str:
    """A few words for a failure below SMTP: the connection, or TLS."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"the server's certificate is not trusted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"the TLS handshake failed ({error.reason or type(error).__name__})"
    return next(
        (words for kind, words in _NETWORK_FAILURES if isinstance(error, kind)),
        f"the connection failed ({type(error).__name__})",
    )


_SMTP_REFUSALS: tuple[tuple[type[smtplib.SMTPResponseException], str], ...] = (
    (smtplib.SMTPAuthenticationError, "the server refused the login"),
    (smtplib.SMTPSenderRefused, "the server refused the sender"),
    (smtplib.SMTPDataError, "the server refused the message"),
    (smtplib.SMTPResponseException, "the server answered with an error"),
)
_NETWORK_FAILURES: tuple[tuple[type[OSError], str], ...] = (
    (TimeoutError, "the server did not answer in time"),
    (ConnectionRefusedError, "the connection was refused"),
    (socket.gaierror, "the host name does not resolve"),
)


def _acs_failure(error: AzureError) -> str:
    """A few words for what went wrong, with the service's error code where it gave one."""
    if isinstance(error, ClientAuthenticationError):
        return "the service refused the app's credentials, or none could be obtained"
    if isinstance(error, HttpResponseError):
        detail = getattr(error.error, "code", None) if error.error is not None else None
        suffix = f" ({detail})" if detail else ""
        if isinstance(error.inner_exception, OperationFailed):
            return f"the service reported the send as failed{suffix}"
        return f"the service answered {error.status_code}{suffix}"
    if isinstance(error, ServiceRequestError):
        return "the service could not be reached"
    if isinstance(error, ServiceResponseError):
        return "the service gave no valid answer"
    return type(error).__name__
