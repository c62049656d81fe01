"""The outbox: a request for a mail, put on the Storage queue (every concern asks for mail through it).

The message says what to send and to whom, never a code: the mail function
issues codes when it sends, so nothing secret waits in the queue. Messages are
JSON, base64-encoded as the Functions host's queue trigger expects by default
(``extensions.queues.messageEncoding``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from shared.errors import InvalidRequest, MailNotConfigured, StorageUnavailable
from shared.events import log_event
from shared.settings.mail import MailKind, MailSettings, QueueSettings
from shared.storage.clients import mail_queue, storage_errors

if TYPE_CHECKING:
    pass

__all__ = ["MailRequest", "Outbox", "enqueue"]


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


def enqueue(settings: QueueSettings, request: MailRequest, *, visible_after: int = 0) -> None:
    """Put ``request`` on the mail queue: one round trip.

    ``visible_after`` seconds pass before the mail function can see the message
    (``AUTH_MAIL_DELAY_SECONDS``), so the work of sending it does not follow the
    request that queued it at a time an observer could predict.

    :raises StorageUnavailable: the queue could not be reached.
    """
    with storage_errors("queue mail"):
        mail_queue(settings).send_message(request.to_json(), visibility_timeout=visible_after or None)
