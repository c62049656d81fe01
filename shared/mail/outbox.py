"""The HTTP side of mail: a request for a mail, put on the Storage queue.

The message says what to send and to whom, never a code: the mail function
issues codes when it sends, so nothing secret waits in the queue. Messages are
JSON, base64-encoded as the Functions host's queue trigger expects by default
(``extensions.queues.messageEncoding``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError

from shared.errors import InvalidRequest, MailNotConfigured, StorageUnavailable
from shared.events import log_event
from shared.settings.mail import MailKind, MailSettings, QueueSettings
from shared.storage import (
    RETRY_OPTIONS,
    http_transport,
    storage_errors,
    storage_requests,
    use_environment_proxy,
)

if TYPE_CHECKING:
    from azure.storage.queue import QueueClient

__all__ = ["MailRequest", "Outbox", "enqueue", "mail_queue", "reset_queues"]


@dataclass(frozen=True, slots=True)
class MailRequest:
    """One mail to send: its kind, and whom it is about.

    ``email`` is the address the request named (forgot, resend, registration),
    or the account's email when it was asked for; ``user_id`` names the account
    where the caller knew it; ``new_email`` is the address an email change goes to.
    """

    kind: MailKind
    email: str
    user_id: str | None = None
    new_email: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MailRequest:
        """:raises InvalidRequest: the message is not a mail request (it will never become one)."""
        try:
            document: Any = json.loads(text)
            if not isinstance(document, dict):
                raise TypeError("not an object")
            email, user_id, new_email = (document.get(name) for name in ("email", "user_id", "new_email"))
            if not isinstance(email, str) or not all(
                v is None or isinstance(v, str) for v in (user_id, new_email)
            ):
                raise TypeError("fields are not strings")
            return cls(kind=MailKind(document["kind"]), email=email, user_id=user_id, new_email=new_email)
        except (ValueError, TypeError, KeyError):
            raise InvalidRequest("not a mail request") from None


class Outbox:
    """Where the HTTP functions hand over mail, for one app's mail settings."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings

    @property
    def configured(self) -> bool:
        return self._settings.configured

    def require(self) -> None:
        """:raises MailNotConfigured: no mail transport is configured."""
        if not self._settings.configured:
            raise MailNotConfigured("Mail is not configured on this service.")

    def send(self, request: MailRequest) -> None:
        """Queue ``request``: one round trip.

        :raises MailNotConfigured: no mail transport is configured.
        :raises StorageUnavailable: the queue could not be reached.
        """
        self.require()
        enqueue(self._settings.queue, request, visible_after=self._settings.delay.draw())

    def send_after_change(self, request: MailRequest) -> None:
        """Queue ``request`` after a change that is already stored, if mail is configured.

        The change stands whether or not the mail could be queued; a queue
        outage is logged (``mail_not_queued``) instead of failing the request.
        """
        if not self._settings.configured:
            return
        try:
            enqueue(self._settings.queue, request, visible_after=self._settings.delay.draw())
        except StorageUnavailable:
            log_event("mail_not_queued", logging.ERROR, kind=request.kind, user_id=request.user_id)


_lock = threading.Lock()
_queues: dict[QueueSettings, QueueClient] = {}


def mail_queue(settings: QueueSettings) -> QueueClient:
    """Return this process's client for the mail queue, creating the queue once if missing.

    :raises StorageUnavailable: the queue could not be reached; the next call tries again.
    """
    client = _queues.get(settings)
    if client is not None:
        return client
    with _lock:
        client = _queues.get(settings)
        if client is None:
            client = _new_queue_client(settings)
            with storage_errors("create queue"), contextlib.suppress(ResourceExistsError):
                client.create_queue()
            _queues[settings] = client
    return client


def enqueue(settings: QueueSettings, request: MailRequest, *, visible_after: int = 0) -> None:
    """Put ``request`` on the mail queue: one round trip.

    ``visible_after`` seconds pass before the mail function can see the message
    (``AUTH_MAIL_DELAY_SECONDS``), so the work of sending it does not follow the
    request that queued it at a time an observer could predict.

    :raises StorageUnavailable: the queue could not be reached.
    """
    with storage_errors("queue mail"):
        mail_queue(settings).send_message(request.to_json(), visibility_timeout=visible_after or None)


def reset_queues() -> None:
    """Close and forget every cached queue client (tests, or after a settings change)."""
    with _lock:
        for client in _queues.values():
            client.close()
        _queues.clear()


def _new_queue_client(settings: QueueSettings) -> QueueClient:
    # Imported on first use: the queue SDK costs ~100 ms of cold start, and most requests send no mail.
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy  # noqa: PLC0415

    from shared.mail.retry import BudgetedRetry  # noqa: PLC0415 - imports the queue SDK

    transport = http_transport(settings.timeout_seconds)
    options: dict[str, Any] = {
        "message_encode_policy": TextBase64EncodePolicy(),
        "raw_request_hook": storage_requests,
        "retry_policy": BudgetedRetry(settings.timeout_seconds, **RETRY_OPTIONS),
        "transport": transport,
    }
    if settings.endpoint is not None:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only for identity-based access

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        client = QueueClient(settings.endpoint, settings.name, credential=credential, **options)
    elif settings.connection_string is None:
        raise ValueError("the mail queue has neither an endpoint nor a connection string")
    else:
        client = QueueClient.from_connection_string(
            _with_development_storage(settings.connection_string), settings.name, **options
        )
    use_environment_proxy(transport, client.url)
    return client


def _with_development_storage(connection_string: str) -> str:
    """``UseDevelopmentStorage=true`` names Azurite's well-known account on its default ports."""
    if connection_string.replace(" ", "").lower().rstrip(";") != "usedevelopmentstorage=true":
        return connection_string
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    )
