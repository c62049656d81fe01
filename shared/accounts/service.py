"""Registering accounts and logging in: the service's use cases.

The successor of the Mobile Services ``register`` and ``login`` custom APIs,
without their flaws: Argon2id instead of PBKDF2-SHA1 with 1,000 iterations,
constant-time verification, an atomic insert instead of check-then-insert,
a point read instead of a table scan by email, and ``exp`` in seconds.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from shared.accounts.authentication import MAX_FAILURE_WRITE_ATTEMPTS, Authentication, Session
from shared.accounts.emails import normalize_email
from shared.accounts.passwords import PasswordHasher, Verification, check_password_policy, password_length
from shared.accounts.store import Account, AccountStore, Credentials, LoginRecord, MoveOutcome
from shared.errors import (
    EmailTaken,
    InvalidCredentials,
    ServiceError,
    TooManyAttempts,
)
from shared.events import log_event
from shared.recovery.codes import OneTimeCodes
from shared.sessions.devices import DeviceSession, current_user_agent, new_session
from shared.settings import Settings, get_settings
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest, Outbox
from shared.throttling.rate_limiter import Action, RateLimiter
from shared.tokens import refresh_tokens
from shared.tokens.access_tokens import issue_token
from shared.tokens.key_history import note_keys

__all__ = ["AccountService", "Session", "account_service", "reset_services"]


class AccountService(Authentication):
    """Registers accounts and logs users in, with fixed settings, store and hasher."""

    def __init__(
        self, settings: Settings, store: AccountStore, hasher: PasswordHasher, limiter: RateLimiter
    ) -> None:
        self.settings = settings
        self.store = store
        self.hasher = hasher
        self.limiter = limiter
        self.codes = OneTimeCodes(settings.storage, settings.tokens.keys, settings.mail.code_lifetime)
        self.outbox = Outbox(settings.mail)

    def register(self, email: str, password: str, *, forwarded_for: str | None = None) -> Session:
        """Create an account and sign its first token.

        ``forwarded_for`` is the request's ``X-Forwarded-For``, which names the
        client whose attempts are counted against ``AUTH_RATE_LIMIT_REGISTER``.

        :raises InvalidRequest: the email is not valid.
        :raises WeakPassword: the password breaks the policy.
        :raises TooManyAttempts: too many registrations from the client's address.
        :raises EmailTaken: the (normalized) email has an account.
        :raises StorageUnavailable: storage could not be reached; nothing was stored.
        """
        normalized = normalize_email(email)
        check_password_policy(self.settings.password_policy, password, email=normalized)
        admission = self.limiter.admit(Action.REGISTER, forwarded_for)
        password_hash = self.hasher.hash(password)  # while the attempt is counted
        admission.wait()
        device, secret = self._with_refresh(
            new_session(version=0, user_agent=current_user_agent(), amr=("pwd",))
        )
        account = self.store.create(normalized, password_hash, session=device)
        log_event("registered", user_id=account.user_id)
        log_event("session_started", user_id=account.user_id, session=device.id)
        verify = MailRequest(MailKind.VERIFY_EMAIL, normalized, user_id=account.user_id)
        self.outbox.send_after_change(verify)
        return self._token(account.user_id, account.email, device, device.created_at, refresh_secret=secret)

    def register_unverified(self, email: str, password: str, *, forwarded_for: str | None = None) -> None:
        """Register under ``AUTH_REQUIRE_VERIFIED_EMAIL``: no token, and no answer that tells
        whether the email had an account.

        A new email gets an account and a verification mail; an email with an
        account is left unchanged and its owner gets a mail saying someone
        tried to sign up. Both cost the same: a hash, the insert attempt, a
        read and a queued mail.

        :raises InvalidRequest: the email is not valid.
        :raises WeakPassword: the password breaks the policy.
        :raises TooManyAttempts: too many registrations from the client's address.
        :raises StorageUnavailable: storage or the mail queue could not be reached.
        """
        normalized = normalize_email(email)
        check_password_policy(self.settings.password_policy, password, email=normalized)
        admission = self.limiter.admit(Action.REGISTER, forwarded_for)
        password_hash = self.hasher.hash(password)
        admission.wait()
        try:
            account = self.store.create(normalized, password_hash)
        except EmailTaken:
            log_event("registration_of_existing_email")
            self.outbox.send(MailRequest(MailKind.SIGNUP_EXISTING, normalized))
            return
        # The same storage work as the refused insert, which reads the existing row.
        self.store.login_record(normalized)
        log_event("registered", user_id=account.user_id)
        self.outbox.send(MailRequest(MailKind.VERIFY_EMAIL, normalized, user_id=account.user_id))

    def login_record(self, email: str) -> LoginRecord:
        """Read the login row of ``email``, first finishing an interrupted email change it is part of."""
        record = self.store.login_record(email)
        credentials = record.credentials
        if credentials is not None and credentials.in_move:
            old = credentials.moved_from or credentials.email
            new = credentials.moving_to or credentials.email
            outcome = self.store.resume_move(credentials.user_id, old, new)
            # The account is where the move left it: this attempt follows it there, once.
            record = self.store.login_record(new if outcome is MoveOutcome.MOVED else email)
        return record

    def verify_password(self, credentials: Credentials | None, password: str) -> tuple[Verification, str]:
        """Check ``password`` with the same work whether or not there is an account.

        :returns: the verification, and the reason to log if it is wrong.
        """
        if password_length(password) > self.settings.password_policy.max_length:
            # Longer than any stored password can be: refused without hashing, for any email.
            return Verification.WRONG, "password_too_long"
        if credentials is None:
            self.hasher.verify_nothing(password)
            return Verification.WRONG, "unknown_account"
        return self.hasher.verify(credentials.password_hash, password), "wrong_password"

    def refuse_if_locked(self, record: LoginRecord, now: datetime) -> None:
        """:raises TooManyAttempts: the failure record says the email is locked out at ``now``."""
        refused_until = record.throttle.refused_until(self.settings.lockout, now)
        if refused_until is not None:
            wait = math.ceil((refused_until - now).total_seconds())
            log_event("throttled", logging.WARNING, reason="account_locked", retry_after=wait)
            raise TooManyAttempts(wait)

    def refuse_if_locked_out(self, email: str) -> LoginRecord:
        """Read the failure record of ``email`` and refuse if it is locked out.

        :raises TooManyAttempts: the email is locked out.
        """
        record = self.store.login_record(email)
        self.refuse_if_locked(record, datetime.now(UTC))
        return record

    def count_failure(self, record: LoginRecord, error: ServiceError) -> NoReturn:
        """Count a failed proof (such as a wrong second factor) against the email, then raise ``error``."""
        self.fail(record, datetime.now(UTC), "wrong_second_factor", record.credentials, error=error)

    def fail(
        self,
        record: LoginRecord,
        now: datetime,
        reason: str,
        credentials: Credentials | None,
        *,
        event: str = "login_failed",
        error: ServiceError | None = None,
    ) -> NoReturn:
        """Count one evaluated failure against the email (no lost increments), then refuse."""
        policy = self.settings.lockout
        attempts = 0
        while policy.enabled:
            if self.store.update_login(record, throttle=record.throttle.after_failure(policy, now)):
                break
            attempts += 1
            if attempts >= MAX_FAILURE_WRITE_ATTEMPTS:
                log_event("failure_not_recorded", logging.ERROR, attempts=attempts)
                break
            # Another attempt wrote first: read again and count on top of it, after a short random pause
            # so that many concurrent writers do not keep colliding.
            time.sleep(random.uniform(0, 0.005 * min(attempts, 10)))  # noqa: S311 - jitter, not a secret
            record = self.store.login_record(record.email)
        user_id = credentials.user_id if credentials else None
        log_event(event, logging.WARNING, reason=reason, user_id=user_id)
        raise error or InvalidCredentials()

    def change_password(
        self, account: Account, current_password: str, new_password: str, *, amr: tuple[str, ...] = ()
    ) -> Session:
        """Replace the password, revoke every earlier token, and sign a fresh one.

        ``amr`` is how the caller's session was proven (its token's claim): the
        device's new session keeps it, so a session that passed a second factor
        still has one after the change (``("pwd",)`` when empty).

        :raises InvalidCredentials: ``current_password`` is wrong.
        :raises WeakPassword: ``new_password`` breaks the policy.
        :raises ConflictError: the account changed concurrently; nothing written.
        """
        credentials = self.check_password(account, current_password)
        check_password_policy(self.settings.password_policy, new_password, email=account.email)
        devices: list[tuple[DeviceSession, str]] = []

        def this_device(version: int) -> dict[str, Any]:
            device = new_session(version=version, user_agent=current_user_agent(), amr=amr or ("pwd",))
            devices.append(self._with_refresh(device))
            return devices[-1][0].to_property()

        self.store.change_password(account, credentials, self.hasher.hash(new_password), this_device)
        log_event("password_changed", user_id=account.user_id)
        log_event("session_ended", user_id=account.user_id, session="others", reason="password")
        notice = MailRequest(MailKind.PASSWORD_CHANGED, account.email, user_id=account.user_id)
        self.outbox.send_after_change(notice)
        device, secret = devices[-1]
        return self._token(account.user_id, account.email, device, device.created_at, refresh_secret=secret)

    def delete_account(self, account: Account, credentials: Credentials) -> None:
        """Delete the account's rows, its owner having just proved it is them.

        Its email can register again. Rows of concerns above this package (the passkeys' credential
        rows) are deleted by :func:`shared.login.reauthentication.delete_own_account`.

        :raises ConflictError: the account changed concurrently; nothing deleted.
        """
        self.store.delete(account, credentials)
        log_event("account_deleted", user_id=account.user_id)

    def check_password(self, account: Account, password: str) -> Credentials:
        """Check the current password of a signed-in user, under the same lockout as login.

        A stolen token must not let its holder guess the password faster than
        login would; a wrong password here counts against the email's record.

        :raises TooManyAttempts: the email is locked out.
        :raises InvalidCredentials: the password is wrong (or the account is gone).
        """
        now = datetime.now(UTC)
        record = self.login_record(account.email)
        self.refuse_if_locked(record, now)
        credentials = record.credentials
        if credentials is None:
            log_event("password_check_failed", logging.WARNING, reason="no_account", user_id=account.user_id)
            raise InvalidCredentials()
        verification, reason = self.verify_password(credentials, password)
        if not verification.ok:
            self.fail(record, now, reason, credentials, event="password_check_failed")
        return credentials

    def start_session(self, user_id: str, email: str, session_version: int, amr: tuple[str, ...]) -> Session:
        """Start a device session (one write) and sign its first token."""
        device, secret = self._with_refresh(
            new_session(version=session_version, user_agent=current_user_agent(), amr=amr)
        )
        self.store.start_session(email, user_id, device)
        log_event("session_started", user_id=user_id, session=device.id)
        return self._token(user_id, email, device, device.created_at, refresh_secret=secret)

    def _with_refresh(self, device: DeviceSession) -> tuple[DeviceSession, str]:
        """``device`` holding the digest of its first refresh token, and that token's secret."""
        secret, digest = refresh_tokens.first_secret(self.settings.tokens.keys, device.id)
        return replace(device, refresh_digest=digest, refresh_issued_at=device.created_at), secret

    def _token(
        self,
        user_id: str,
        email: str,
        device: DeviceSession,
        started: datetime,
        *,
        refresh_secret: str | None = None,
    ) -> Session:
        """Sign an access token of ``device``; with ``refresh_secret``, the response's refresh token too."""
        note_keys(self.settings.storage, self.settings.signing.keys)  # once per process: keys status
        refresh = None
        if refresh_secret is not None:
            refresh = str(
                refresh_tokens.RefreshToken(user_id, device.id, device.refresh_generation, refresh_secret)
            )
        token = issue_token(
            self.settings.tokens,
            user_id,
            session_version=device.version,
            session_started=started,
            amr=device.amr,
            session_id=device.id,
        )
        return Session(token=token, email=email, refresh_token=refresh)


def account_service() -> AccountService:
    """Return this process's service for the current settings.

    :raises SettingError: an app setting is missing or invalid.
    """
    return _service_for(get_settings())


def reset_services() -> None:
    """Forget the cached services (tests, or after a settings change)."""
    _service_for.cache_clear()


@functools.lru_cache(maxsize=4)
def _service_for(settings: Settings) -> AccountService:
    limiter = RateLimiter(settings.address_limits, settings.storage, address_key=settings.tokens.keys[0])
    return AccountService(settings, AccountStore(settings.storage), PasswordHasher(settings.argon2), limiter)
