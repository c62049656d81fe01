"""A login's first step: the email and the password.

The successor of the Mobile Services ``login`` custom API. With a second factor
on, the right password is half a login: it answers ``mfa_required`` with the
second step's token (:mod:`shared.login.second_factor`). The checks it is made
of (the lockout, the rate limit, the constant-work verification, counting a
failure) are the account service's, shared with a signed-in user's password check.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import NoReturn

from shared.accounts.emails import normalize_email
from shared.accounts.mobile_services import is_legacy_hash
from shared.accounts.passwords import Verification
from shared.accounts.service import AccountService, Session
from shared.accounts.store import Credentials
from shared.errors import AccountDisabled, EmailNotVerified, InvalidCredentials, MfaRequired
from shared.events import log_event
from shared.throttling.rate_limiter import Action

__all__ = ["log_in"]


def log_in(
    service: AccountService, email: str, password: str, *, forwarded_for: str | None = None
) -> Session:
    """Check an email and password and sign a token.

    Unknown email and wrong password raise the same error after the same
    work (one read, one Argon2id verification, one write of the failure
    record). An email whose failure record says it is locked out is
    refused before any hashing, whether or not it has an account. A right
    password whose hash has outdated parameters is re-hashed in the same
    request (guarded by the row's ETag). ``forwarded_for`` is the request's
    ``X-Forwarded-For``, counted against ``AUTH_RATE_LIMIT_LOGIN``; the attempt is
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
    record = service.login_record(normalized)
    service.refuse_if_locked(record, now)
    admission = service.limiter.admit(Action.LOGIN, forwarded_for)
    verification, reason = service.verify_password(record.credentials, password)  # while it is counted
    admission.wait()
    credentials = record.credentials
    if credentials is None or verification is Verification.WRONG:
        service.fail(record, now, reason, credentials)
    if credentials.disabled:
        log_event("login_refused", logging.WARNING, reason="account_disabled", user_id=credentials.user_id)
        raise AccountDisabled()
    if service.settings.mail.require_verified and not credentials.email_verified:
        user_id = credentials.user_id
        log_event("login_refused", logging.WARNING, reason="email_not_verified", user_id=user_id)
        raise EmailNotVerified("Verify your email address first: follow the code in the mail we sent.")
    new_hash = service.hasher.hash(password) if verification is Verification.OK_NEEDS_REHASH else None
    # With a second factor on, the right password is half a login: the failure record stands until
    # the second step succeeds, so wrong codes spread over fresh logins still add up.
    mfa = credentials.mfa_totp
    throttle = record.throttle if mfa else record.throttle.after_success()
    if new_hash is not None or throttle != record.throttle:
        stored = service.store.update_login(record, password_hash=new_hash, throttle=throttle)
        if new_hash is not None:
            previous = "mobileservices" if is_legacy_hash(credentials.password_hash) else "argon2id"
            log_event("password_rehashed", user_id=credentials.user_id, previous=previous, stored=stored)
    if mfa:
        _challenge(service, credentials)
    log_event("login_succeeded", user_id=credentials.user_id)
    return service.start_session(
        credentials.user_id, credentials.email, credentials.session_version, ("pwd",)
    )


def _challenge(service: AccountService, credentials: Credentials) -> NoReturn:
    """The password was right and a second factor is on: answer with the second step's token."""
    # Imported here: the second factor's libraries stay out of the cold start of a password login.
    from shared.login.second_factor import issue_challenge_for  # noqa: PLC0415

    account = service.store.account(credentials.user_id)
    if account is None:
        raise InvalidCredentials()
    raise MfaRequired(issue_challenge_for(service, account))
