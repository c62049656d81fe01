"""Registering accounts and logging in: the service's use cases.

The successor of the Mobile Services ``register`` and ``login`` custom APIs,
without their flaws: Argon2id instead of PBKDF2-SHA1 with 1,000 iterations,
constant-time verification, an atomic insert instead of check-then-insert,
a point read instead of a table scan by email, and ``exp`` in seconds.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from shared.accounts.emails import normalize_email
from shared.accounts.mobile_services import is_legacy_hash, verify_legacy_token
from shared.accounts.passwords import PasswordHasher, Verification, check_password_policy, password_length
from shared.accounts.store import Account, AccountStore, Credentials, LoginRecord, MoveOutcome
from shared.errors import (
    AccountDisabled,
    ConflictError,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidRequest,
    InvalidToken,
    MfaRequired,
    NotFound,
    ServiceError,
    StorageUnavailable,
    TooManyAttempts,
)
from shared.events import log_event
from shared.mail.config import MailKind
from shared.mail.outbox import MailRequest, Outbox
from shared.recovery.codes import OneTimeCodes
from shared.sessions.devices import DeviceSession, current_user_agent, new_session, touch_interval
from shared.settings import Settings, get_settings
from shared.throttling.rate_limiter import Action, RateLimiter
from shared.tokens.access_tokens import IssuedToken, VerifiedToken, issue_token, verify_token

__all__ = ["AccountService", "Session", "account_service", "reset_services"]

#: Each concurrent failure for one email must be counted (ETag-guarded writes); a writer that
#: keeps losing to others reads again and retries, up to this many times.
MAX_FAILURE_WRITE_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user: the token and who it is for."""

    token: IssuedToken
    email: str

    @property
    def user_id(self) -> str:
        """The user id the token was issued to."""
        return self.token.user_id


class AccountService:
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
        device = new_session(version=0, user_agent=current_user_agent(), amr=("pwd",))
        account = self.store.create(normalized, password_hash, session=device)
        log_event("registered", user_id=account.user_id)
        log_event("session_started", user_id=account.user_id, session=device.id)
        verify = MailRequest(MailKind.VERIFY_EMAIL, normalized, user_id=account.user_id)
        self.outbox.send_after_change(verify)
        return self._token(account.user_id, account.email, device, device.created_at)

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

    def log_in(self, email: str, password: str, *, forwarded_for: str | None = None) -> Session:
        """Check an email and password and sign a token.

        Unknown email and wrong password raise the same error after the same
        work (one read, one Argon2id verification, one write of the failure
        record). An email whose failure record says it is locked out is
        refused before any hashing, whether or not it has an account. A right
        password whose hash has outdated parameters is re-hashed in the same
        request (guarded by the row's ETag). ``forwarded_for`` is as for
        :meth:`register`, against ``AUTH_RATE_LIMIT_LOGIN``; the attempt is
        counted while the password is checked, and an attempt over the limit
        is refused without its result being used or recorded.

        :raises InvalidRequest: the email is not valid.
        :raises TooManyAttempts: too many recent failures for this email, or
            too many attempts from the client's address.
        :raises InvalidCredentials: unknown email or wrong password.
        :raises StorageUnavailable: storage could not be reached.
        """
        normalized = normalize_email(email)
        now = datetime.now(UTC)
        record = self._login_record(normalized)
        self._refuse_if_locked(record, now)
        admission = self.limiter.admit(Action.LOGIN, forwarded_for)
        verification, reason = self._verify_password(record.credentials, password)  # while it is counted
        admission.wait()
        credentials = record.credentials
        if credentials is None or verification is Verification.WRONG:
            self._fail(record, now, reason, credentials)
        if credentials.disabled:
            log_event(
                "login_refused", logging.WARNING, reason="account_disabled", user_id=credentials.user_id
            )
            raise AccountDisabled()
        if self.settings.mail.require_verified and not credentials.email_verified:
            user_id = credentials.user_id
            log_event("login_refused", logging.WARNING, reason="email_not_verified", user_id=user_id)
            raise EmailNotVerified("Verify your email address first: follow the code in the mail we sent.")
        new_hash = self.hasher.hash(password) if verification is Verification.OK_NEEDS_REHASH else None
        if new_hash is not None or not record.throttle.is_clear:
            stored = self.store.update_login(
                record, password_hash=new_hash, throttle=record.throttle.after_success()
            )
            if new_hash is not None:
                previous = "mobileservices" if is_legacy_hash(credentials.password_hash) else "argon2id"
                log_event("password_rehashed", user_id=credentials.user_id, previous=previous, stored=stored)
        if credentials.mfa_totp:
            self._challenge(credentials)
        log_event("login_succeeded", user_id=credentials.user_id)
        return self.start_session(
            credentials.user_id, credentials.email, credentials.session_version, ("pwd",)
        )

    def _challenge(self, credentials: Credentials) -> NoReturn:
        """The password was right and a second factor is on: answer with the second step's token."""
        from shared.mfa.flows import issue_challenge_for  # noqa: PLC0415 - the flows build on this module

        account = self.store.account(credentials.user_id)
        if account is None:
            raise InvalidCredentials()
        raise MfaRequired(issue_challenge_for(self, account))

    def _login_record(self, email: str) -> LoginRecord:
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

    def _verify_password(self, credentials: Credentials | None, password: str) -> tuple[Verification, str]:
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

    def _refuse_if_locked(self, record: LoginRecord, now: datetime) -> None:
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
        self._refuse_if_locked(record, datetime.now(UTC))
        return record

    def count_failure(self, record: LoginRecord, error: ServiceError) -> NoReturn:
        """Count a failed proof (such as a wrong second factor) against the email, then raise ``error``."""
        self._fail(record, datetime.now(UTC), "wrong_second_factor", record.credentials, error=error)

    def _fail(
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

    def authenticate(self, token: str | None, *, require_mfa: bool = False) -> Account:
        """Return the account a request's token stands for.

        Costs one HMAC check and one point read by user id.

        :raises InvalidToken: no token, a token that fails verification, the
            account no longer exists, its sessions were revoked after the
            token was issued, or the session is older than ``AUTH_SESSION_MAX_SECONDS``.
        :raises MfaRequired: ``require_mfa`` and the session has no second factor.
        :raises StorageUnavailable: storage could not be reached.
        """
        account, verified = self.authenticate_session(token)
        if require_mfa and not verified.has_second_factor:
            raise MfaRequired()
        return account

    def authenticate_session(self, token: str | None) -> tuple[Account, VerifiedToken]:
        """As :meth:`authenticate`, with the token's claims (its ``sid`` names the device session).

        One point read (the account row), plus, at most once a minute per
        session, a write of its last-seen time.
        """
        if not token:
            raise InvalidToken("no token")
        verified = self._verify(token)
        now = datetime.now(UTC)
        max_age, started = self.settings.session_max_age, verified.session_started
        if max_age is not None and started is not None and now - started > max_age:
            raise InvalidToken("session older than AUTH_SESSION_MAX_SECONDS")
        account = self.store.account(verified.user_id)
        if account is None:
            raise InvalidToken("no such account")
        if account.disabled:
            raise InvalidToken("account disabled")
        if verified.session_version != account.session_version:
            raise InvalidToken("session revoked")
        if verified.session_id is not None:
            account = self._check_device_session(account, verified.session_id, now)
        return account, verified

    def _check_device_session(self, account: Account, session_id: str, now: datetime) -> Account:
        """Refuse an ended or idle session; note its use; end the least recently used beyond the cap.

        :returns: the account as it is after the last-seen write, if one was made.
        """
        device = account.session(session_id)
        if device is None:
            raise InvalidToken("session ended")
        if len(account.sessions) > len(account.live_sessions):
            # Sessions of an older session version linger on the row until it is rewritten; rewrite it
            # once, so that they cannot pile up towards Table Storage's limit of properties per row.
            account = self._end_quietly(account, set(), reason="revoked")
        idle = self.settings.session_idle
        if idle is not None and now - device.last_seen_at > idle:
            self._end_quietly(account, {device.id}, reason="idle")
            raise InvalidToken("session idle")
        live = account.live_sessions
        if len(live) > self.settings.max_sessions:
            by_use = sorted(live, key=lambda s: (s.last_seen_at, s.created_at))
            evicted = {s.id for s in by_use[: len(live) - self.settings.max_sessions]}
            account = self._end_quietly(account, evicted, reason="evicted")
            if device.id in evicted:
                raise InvalidToken("session evicted")
        elif now - device.last_seen_at >= touch_interval(idle):
            return self.store.touch_session(account, device.seen(now))
        return account

    def _end_quietly(self, account: Account, session_ids: set[str], *, reason: str) -> Account:
        """End sessions the gate found over (a concurrent change of the row wins; a later request retries)."""
        try:
            ended = self.store.end_sessions(account, session_ids)
        except ConflictError:
            return account
        for session_id in session_ids:
            log_event("session_ended", user_id=account.user_id, session=session_id, reason=reason)
        return ended

    def _verify(self, token: str) -> VerifiedToken:
        try:
            return verify_token(self.settings.tokens, token)
        except InvalidToken:
            if self.settings.legacy_tokens is None:
                raise
        # A Mobile Services token of an app installed before the move (AUTH_LEGACY_MASTER_KEY).
        verified = verify_legacy_token(self.settings.legacy_tokens, token)
        log_event("legacy_token_accepted", user_id=verified.user_id)
        return verified

    def refresh(self, token: str | None) -> Session:
        """Trade a valid, unrevoked token for a fresh one of the same session.

        The new token keeps the time the user last gave a password, so
        refreshing cannot stretch a session past ``AUTH_SESSION_MAX_SECONDS``.

        :raises InvalidToken: as :meth:`authenticate`.
        """
        account, verified = self.authenticate_session(token)
        log_event("token_refreshed", user_id=account.user_id)
        started = verified.session_started or datetime.now(UTC)  # a token from before sessions had a start
        token_ = issue_token(
            self.settings.tokens,
            account.user_id,
            session_version=account.session_version,
            session_started=started,
            amr=verified.amr,
            session_id=verified.session_id,
        )
        return Session(token=token_, email=account.email)

    def log_out(self, token: str | None) -> None:
        """End the token's device session; other devices stay signed in.

        A token from before sessions per device (no ``sid``) ends every session
        of the account, as logout did then.
        """
        account, verified = self.authenticate_session(token)
        if verified.session_id is None:
            self.end_all_sessions(account)
        else:
            self.end_session(account, verified.session_id, reason="logout")
        log_event("logged_out", user_id=account.user_id)

    def end_session(self, account: Account, session_id: str, *, reason: str) -> None:
        """End one live session of the account, on every instance at once.

        :raises NotFound: no such live session of this account.
        """
        for _ in range(MAX_FAILURE_WRITE_ATTEMPTS):
            if account.session(session_id) is None:
                raise NotFound("No such session.")
            try:
                self.store.end_sessions(account, {session_id})
            except ConflictError:
                fresh = self.store.account(account.user_id)
                if fresh is None:
                    raise NotFound("No such session.") from None
                account = fresh
                continue
            log_event("session_ended", user_id=account.user_id, session=session_id, reason=reason)
            return
        raise ConflictError()

    def end_all_sessions(self, account: Account, *, reason: str = "revoked") -> None:
        """End every session of the account, tokens from before sessions per device included."""
        self.store.revoke_sessions(account)
        log_event("session_ended", user_id=account.user_id, session="all", reason=reason)

    def change_password(self, account: Account, current_password: str, new_password: str) -> Session:
        """Replace the password, revoke every earlier token, and sign a fresh one.

        :raises InvalidCredentials: ``current_password`` is wrong.
        :raises WeakPassword: ``new_password`` breaks the policy.
        :raises ConflictError: the account changed concurrently; nothing written.
        """
        credentials = self.check_password(account, current_password)
        check_password_policy(self.settings.password_policy, new_password, email=account.email)
        devices: list[DeviceSession] = []

        def this_device(version: int) -> dict[str, Any]:
            devices.append(new_session(version=version, user_agent=current_user_agent(), amr=("pwd",)))
            return devices[-1].to_property()

        self.store.change_password(account, credentials, self.hasher.hash(new_password), this_device)
        log_event("password_changed", user_id=account.user_id)
        log_event("session_ended", user_id=account.user_id, session="others", reason="password")
        notice = MailRequest(MailKind.PASSWORD_CHANGED, account.email, user_id=account.user_id)
        self.outbox.send_after_change(notice)
        return self._token(account.user_id, account.email, devices[-1], devices[-1].created_at)

    def delete_account(self, account: Account, password: str, *, code: str | None = None) -> None:
        """Delete the account after checking its password (and, with TOTP on, a code).

        Its email can register again.

        :raises InvalidCredentials: ``password`` is wrong.
        :raises InvalidRequest: TOTP is on and no ``code`` was given.
        :raises InvalidCode: the code is wrong.
        :raises ConflictError: the account changed concurrently; nothing deleted.
        """
        credentials = self.check_password(account, password)
        if account.mfa_totp:
            from shared.mfa.flows import check_code  # noqa: PLC0415 - the flows build on this module

            if code is None:
                raise InvalidRequest("The field 'code' is required: the account has a second factor.")
            check_code(self, account, code)
        self.store.delete(account, credentials)
        from shared.passkeys.credentials import PasskeyStore  # noqa: PLC0415 - passkeys build on this module

        with contextlib.suppress(StorageUnavailable):  # the account is gone: its passkeys sign in no more
            PasskeyStore(self.settings.storage).delete_all(account)  # their rows are outside its partition
        log_event("account_deleted", user_id=account.user_id)

    def check_password(self, account: Account, password: str) -> Credentials:
        """Check the current password of a signed-in user, under the same lockout as login.

        A stolen token must not let its holder guess the password faster than
        login would; a wrong password here counts against the email's record.

        :raises TooManyAttempts: the email is locked out.
        :raises InvalidCredentials: the password is wrong (or the account is gone).
        """
        now = datetime.now(UTC)
        record = self._login_record(account.email)
        self._refuse_if_locked(record, now)
        credentials = record.credentials
        if credentials is None:
            log_event("password_check_failed", logging.WARNING, reason="no_account", user_id=account.user_id)
            raise InvalidCredentials()
        verification, reason = self._verify_password(credentials, password)
        if not verification.ok:
            self._fail(record, now, reason, credentials, event="password_check_failed")
        return credentials

    def start_session(self, user_id: str, email: str, session_version: int, amr: tuple[str, ...]) -> Session:
        """Start a device session (one write) and sign its first token."""
        device = new_session(version=session_version, user_agent=current_user_agent(), amr=amr)
        self.store.start_session(email, user_id, device)
        log_event("session_started", user_id=user_id, session=device.id)
        return self._token(user_id, email, device, device.created_at)

    def _token(self, user_id: str, email: str, device: DeviceSession, started: datetime) -> Session:
        token = issue_token(
            self.settings.tokens,
            user_id,
            session_version=device.version,
            session_started=started,
            amr=device.amr,
            session_id=device.id,
        )
        return Session(token=token, email=email)


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
