"""The mail function's side: from a queued request to a sent mail.

For each :class:`~shared.storage.outbox.MailRequest` the courier looks up what it
needs, decides whether a mail goes out at all (an unknown address gets none;
a verified one gets no verification code; a disabled account gets notices
only; an address over ``AUTH_MAIL_LIMIT`` gets nothing more for a while),
issues a one-time code where the mail proves an address, renders the
templates and hands the mail to the transport.

A failed send raises, so the Functions host retries the message after the
queue's visibility timeout and moves it to ``<queue>-poison`` when its
``maxDequeueCount`` is spent; each retry issues a fresh code (replacing the
one of the failed attempt). Every outcome is logged: ``mail_sent``,
``mail_dropped`` (``reason``), ``mail_failed``, ``mail_poisoned``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.accounts.service import account_service
from shared.accounts.store import AccountStore
from shared.errors import InvalidRequest, MailNotConfigured
from shared.events import log_event
from shared.mail.templates import MailContext, mask_email, render_mail
from shared.mail.transport import MailDeliveryFailed, OutgoingMail, Transport, transport_for
from shared.recovery.codes import CodePurpose, OneTimeCodes
from shared.settings import Settings, get_settings
from shared.settings.mail import MailKind, MailSettings
from shared.storage.outbox import MailRequest
from shared.throttling.rate_limiter import RateLimiter

__all__ = ["Courier", "courier", "max_dequeue_count", "reset_courier"]

#: The host's default ``extensions.queues.maxDequeueCount``.
DEFAULT_MAX_DEQUEUE_COUNT = 5
_HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
_CODE_PURPOSES = {
    MailKind.PASSWORD_RESET: CodePurpose.RESET,
    MailKind.VERIFY_EMAIL: CodePurpose.VERIFY,
    MailKind.EMAIL_CHANGE: CodePurpose.EMAIL_CHANGE,
}
#: Notices that say how many recovery codes are left (read when the mail is sent).
_COUNTS_RECOVERY_CODES = (MailKind.RECOVERY_CODE_USED, MailKind.RECOVERY_CODES_REGENERATED)
_PAGES = {MailKind.PASSWORD_RESET: "password/reset", MailKind.VERIFY_EMAIL: "email/verify"}


@dataclass(frozen=True, slots=True)
class _Decision:
    """What to send, to whom, about which account; ``None`` fields where they do not apply."""

    kind: MailKind
    to: str
    user_id: str | None = None
    code_email: str | None = None  # the account email a code is issued under
    new_email: str | None = None
    recovery_codes_left: int | None = None


class _Dropped(Exception):
    """No mail goes out for this request; ``reason`` is logged."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Courier:
    """Sends the mails of one app."""

    def __init__(
        self,
        settings: MailSettings,
        store: AccountStore,
        codes: OneTimeCodes,
        limiter: RateLimiter,
        transport: Transport,
    ) -> None:
        self._settings = settings
        self._store = store
        self._codes = codes
        self._limiter = limiter
        self._transport = transport

    def deliver(self, body: str, *, dequeue_count: int, max_dequeue_count: int) -> None:
        """Handle one queue message.

        A message that is not a mail request is dropped (retrying cannot mend
        it). The per-address mail limit counts a request once, on its first
        delivery, not on each retry.

        :raises MailDeliveryFailed: the transport failed; the host retries the message.
        :raises StorageUnavailable: storage failed; the host retries the message.
        """
        try:
            request = MailRequest.from_json(body)
        except InvalidRequest:
            log_event("mail_dropped", logging.WARNING, reason="malformed")
            return
        try:
            decision = self._decide(request)
            if dequeue_count <= 1 and not self._limiter.admit_mail(
                decision.kind, decision.to, self._settings.limit
            ):
                raise _Dropped("mail_limit")
            mail = self._compose(decision)
            self._transport.send(mail)
        except _Dropped as dropped:
            log_event("mail_dropped", kind=request.kind, reason=dropped.reason, user_id=request.user_id)
            return
        except Exception as error:
            last = dequeue_count >= max_dequeue_count
            log_event(
                "mail_poisoned" if last else "mail_failed",
                logging.ERROR if last else logging.WARNING,
                kind=request.kind,
                attempt=dequeue_count,
                error=type(error).__name__,
                detail=str(error) if isinstance(error, MailDeliveryFailed) else None,
            )
            raise
        log_event("mail_sent", kind=decision.kind, user_id=decision.user_id, attempt=dequeue_count)

    def _decide(self, request: MailRequest) -> _Decision:
        """Look up the account and choose the mail.

        :raises _Dropped: no mail goes out.
        """
        kind = request.kind
        if kind is MailKind.EMAIL_CHANGE:
            return self._decide_email_change(request)
        if kind is MailKind.EMAIL_CHANGED:
            if request.new_email is None:
                raise _Dropped("malformed")
            return _Decision(kind, request.email, request.user_id, new_email=request.new_email)
        credentials = self._store.credentials(request.email)
        if credentials is None:
            self._work_as_if_sent(request)
            raise _Dropped("unknown_address")
        if credentials.disabled and not kind.is_notice:
            raise _Dropped("account_disabled")
        if request.user_id is not None and credentials.user_id != request.user_id:
            raise _Dropped("account_changed")
        if kind is MailKind.VERIFY_EMAIL and credentials.email_verified:
            raise _Dropped("already_verified")
        if kind in _COUNTS_RECOVERY_CODES:
            account = self._store.account(credentials.user_id)
            if account is None:
                raise _Dropped("account_changed")
            left = account.recovery_codes_left
            return _Decision(kind, request.email, credentials.user_id, recovery_codes_left=left)
        return _Decision(kind, request.email, credentials.user_id, code_email=request.email)

    def _work_as_if_sent(self, request: MailRequest) -> None:
        """For an address without an account: the work a mail to it would cost, without the mail.

        The mail function runs beside the HTTP functions, so its load shows in
        the latency of requests that follow; an unknown address therefore
        costs what a known one does (the mail-limit count, a code row's storage
        round trip, the code and its digest, the rendering), but nothing is
        stored under the address and nothing is sent. Together with the random
        delay before a queued mail becomes visible (``AUTH_MAIL_DELAY_SECONDS``),
        this keeps the load from telling which addresses have accounts.
        """
        kind = request.kind
        self._limiter.admit_mail(kind, request.email, self._settings.limit)
        purpose = _CODE_PURPOSES.get(kind)
        code = None
        if purpose is not None:
            self._codes.read(request.email, purpose)
            code = self._codes.stand_in_code(purpose, request.email)
        context = MailContext(
            app_name=self._settings.app_name,
            recipient=request.email,
            code=code,
            link=self._link(kind, request.email, code) if code else None,
            reset_link=self._link(MailKind.PASSWORD_RESET, request.email, None),
        )
        with contextlib.suppress(ValueError):  # a kind whose mail needs more than an address renders nothing
            render_mail(kind, context, override=self._settings.templates)

    def _decide_email_change(self, request: MailRequest) -> _Decision:
        new_email = request.new_email
        account = self._store.account(request.user_id) if request.user_id else None
        if new_email is None or account is None or account.email != request.email:
            raise _Dropped("account_changed")
        if account.disabled:
            raise _Dropped("account_disabled")
        if self._store.credentials(new_email) is not None:
            return _Decision(MailKind.EMAIL_IN_USE, new_email, account.user_id, new_email=new_email)
        return _Decision(
            MailKind.EMAIL_CHANGE, new_email, account.user_id, code_email=account.email, new_email=new_email
        )

    def _compose(self, decision: _Decision) -> OutgoingMail:
        settings = self._settings
        code = link = None
        purpose = _CODE_PURPOSES.get(decision.kind)
        if purpose is not None and decision.code_email is not None and decision.user_id is not None:
            code = self._codes.issue(
                decision.code_email, purpose, user_id=decision.user_id, address=decision.to
            )
            link = self._link(decision.kind, decision.to, code)
        context = MailContext(
            app_name=settings.app_name,
            recipient=decision.to,
            code=code,
            link=link,
            code_lifetime_minutes=max(1, int(settings.code_lifetime.total_seconds()) // 60),
            new_email=decision.new_email,
            masked_email=mask_email(decision.new_email) if decision.new_email else None,
            reset_link=self._link(MailKind.PASSWORD_RESET, decision.to, None),
            recovery_codes_left=decision.recovery_codes_left,
        )
        rendered = render_mail(decision.kind, context, override=settings.templates)
        sender = settings.sender or ""
        return OutgoingMail(sender, decision.to, rendered.subject, rendered.text, rendered.html)

    def _link(self, kind: MailKind, email: str, code: str | None) -> str | None:
        """The page (or the app's own link) for a code; the code and email ride in the fragment."""
        page = _PAGES.get(kind)
        base = self._settings.app_link_base or (
            f"{self._settings.public_base_url}/api" if self._settings.public_base_url else None
        )
        if page is None or base is None:
            return None
        fragment = f"email={quote(email, safe='')}" + (f"&code={code}" if code else "")
        return f"{base.rstrip('/')}/{page}#{fragment}"


def max_dequeue_count(environ: dict[str, str] | None = None) -> int:
    """The host's ``extensions.queues.maxDequeueCount``: an app-setting override, else host.json."""
    environment = os.environ if environ is None else environ
    override = environment.get("AzureFunctionsJobHost__extensions__queues__maxDequeueCount")
    if override and override.strip().isdigit():
        return int(override)
    return _host_json_max_dequeue_count()


@functools.cache
def _host_json_max_dequeue_count() -> int:
    try:
        host: Any = json.loads(_HOST_JSON.read_text(encoding="utf-8"))
        return int(host["extensions"]["queues"]["maxDequeueCount"])
    except (OSError, ValueError, KeyError, TypeError):
        return DEFAULT_MAX_DEQUEUE_COUNT


def courier() -> Courier:
    """Return this process's courier for the current settings.

    :raises SettingError: an app setting is missing or invalid.
    :raises MailNotConfigured: no transport is configured (the mail function should not run).
    """
    return _courier_for(get_settings())


def reset_courier() -> None:
    """Forget the cached courier (tests, or after a settings change)."""
    _courier_for.cache_clear()


@functools.lru_cache(maxsize=4)
def _courier_for(settings: Settings) -> Courier:
    transport = transport_for(settings.mail)
    if transport is None:
        raise MailNotConfigured()
    service = account_service()
    return Courier(settings.mail, service.store, service.codes, service.limiter, transport)
