"""Mail in tests: a real SMTP server in the test process, and the mail queue read as the host reads it.

:class:`Inbox` is an ``aiosmtpd`` server on loopback that keeps every message
it receives. :func:`deliver_queued` takes the messages on the app's mail queue
and hands each to the real ``send_mail`` function, as the Functions host's
queue trigger does (base64 text, ``dequeue_count``), deleting it on success.
Tests that run the local host let its own queue trigger do this instead.
"""

from __future__ import annotations

import email
import email.policy
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

import send_mail
from tests.conftest import AppEnvironment
from tools.devhost.queue_trigger import trigger_message
from tools.devhost.worker import InvocationContext
from tools.emulators.azurite import Azurite, free_port

CODE_LINE = re.compile(r"^\s*(\d{8})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP server accepted."""

    sender: str
    to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())

    @property
    def code(self) -> str:
        """The 8-digit code on a line of its own in the text part."""
        found = CODE_LINE.findall(self.text)
        assert len(found) == 1, self.text
        return str(found[0])

    @property
    def link(self) -> str | None:
        found = re.search(r"^(https?://\S+)\s*$", self.text, re.MULTILINE)
        return found[1] if found else None


class _Collector:
    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mail = ReceivedMail(str(envelope.mail_from), [str(to) for to in envelope.rcpt_tos], parsed)
        with self._inbox.lock:
            self._inbox.received.append(mail)
        return "250 OK"


class Inbox:
    """A real SMTP server on loopback that keeps what it receives."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[ReceivedMail] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> Inbox:
        self._controller = Controller(_Collector(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[ReceivedMail]:
        with self.lock:
            return [mail for mail in self.received if address in mail.to]

    def wait_for(self, address: str, count: int = 1, timeout: float = 20.0) -> list[ReceivedMail]:
        """Wait until ``address`` has ``count`` mails; return them, oldest first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mails = self.to(address)
            if len(mails) >= count:
                return mails
            time.sleep(0.05)
        raise AssertionError(f"{address} got {len(self.to(address))} mails, expected {count}")


def mail_settings(azurite: Azurite, inbox: Inbox) -> dict[str, str]:
    """App settings for mail through ``inbox``, on a queue of the test's own."""
    return {
        "AzureWebJobsStorage": azurite.storage_connection_string,
        "AUTH_MAIL_QUEUE": "mail-" + secrets.token_hex(6),
        "AUTH_MAIL_SMTP_HOST": "127.0.0.1",
        "AUTH_MAIL_SMTP_PORT": str(inbox.port),
        "AUTH_MAIL_SMTP_SECURITY": "none",
        "AUTH_MAIL_FROM": "no-reply@example.com",
        "AUTH_APP_NAME": "Test app",
    }


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server for this test."""
    server = Inbox().start()
    yield server
    server.stop()


@pytest.fixture
def mail_env(app_env: AppEnvironment, azurite: Azurite, inbox: Inbox) -> AppEnvironment:
    """``app_env`` with mail configured to go through ``inbox``."""
    app_env.set(**mail_settings(azurite, inbox))
    return app_env


def mail_queue(env: AppEnvironment, suffix: str = "") -> QueueClient:
    return QueueClient.from_connection_string(
        env.values["AzureWebJobsStorage"],
        env.values["AUTH_MAIL_QUEUE"] + suffix,
        message_decode_policy=BinaryBase64DecodePolicy(),
    )


def deliver_queued(env: AppEnvironment) -> int:
    """Hand every message now on the mail queue to ``send_mail.main``, as the host would.

    :returns: how many were delivered (a failed one stays on the queue and raises).
    """
    queue = mail_queue(env)
    delivered = 0
    for message in queue.receive_messages(visibility_timeout=30):
        send_mail.main(trigger_message(message, message.content), InvocationContext("send_mail", "send_mail"))
        queue.delete_message(message)
        delivered += 1
    return delivered
