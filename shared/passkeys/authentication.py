"""Signing in with a passkey, without typing an email (discoverable credentials, and browser autofill).

1. ``POST /api/passkeys/authentication/options`` answers ``{"publicKey": ...}``:
   request options with a fresh challenge, user verification required and an
   empty ``allowCredentials``, so the platform offers whichever passkey of the
   relying party it holds.
2. ``POST /api/passkeys/authentication`` ``{"credential"}``: the challenge
   named by its ``clientDataJSON`` is used up (once, on any instance), the
   passkey is found by its credential id and must be on its account's list,
   the user handle must be the account's, and py_webauthn checks the origin,
   the RP id, user verification and the signature. The answer is login's
   session body; the session's ``amr`` is ``hwk`` (a device-bound key) or
   ``swk`` (a synced one, backup-eligible), ``user`` and ``mfa``: a user-verified
   passkey is something held and something known or been, so ``require_mfa``
   accepts it.

The sign counter follows py_webauthn's rule: 0 is what synced passkeys always
report and is accepted; once a credential has reported a non-zero counter, an
assertion whose counter is not greater is refused (a cloned authenticator),
logged as ``passkey_refused reason=sign_count``. The rule is applied after the
signature checked out, so the reason logged is never a forger's, and the
counter is written guarded by the row's ETag, so two sign-ins with one
counter value cannot both pass.

Every attempt counts against the client address's login limit
(``AUTH_RATE_LIMIT_LOGIN``), as a password login does; every refusal is one
``401 passkey_refused``, whatever the reason.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from webauthn import generate_authentication_options, verify_authentication_response
from webauthn.helpers import options_to_json_dict
from webauthn.helpers.structs import (
    AuthenticationCredential,
    CredentialDeviceType,
    UserVerificationRequirement,
)

from shared.accounts.service import Session
from shared.accounts.store import Account
from shared.errors import AccountDisabled, EmailNotVerified, PasskeyRefused
from shared.events import log_event
from shared.passkeys.account_row import credential_ids, user_handle
from shared.passkeys.ceremony import MALFORMED, assertion, refusal_reason, require_credential
from shared.passkeys.challenges import ChallengeRefused, Flow
from shared.passkeys.credentials import StoredPasskey
from shared.passkeys.service import Passkeys
from shared.throttling.rate_limiter import Action

__all__ = ["AMR_BOUND_KEY", "AMR_SYNCED_KEY", "request_options", "sign_in"]

#: ``amr`` of a passkey sign-in (RFC 8176): a hardware-bound or a software (synced) key, the user verified.
AMR_BOUND_KEY = ("hwk", "user", "mfa")
AMR_SYNCED_KEY = ("swk", "user", "mfa")
#: Lost write races on one passkey's counter before the sign-in is refused.
_MAX_ATTEMPTS = 10


class _Refused(Exception):
    def __init__(self, reason: str, user_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.user_id = user_id


@dataclass(frozen=True, slots=True)
class _Checked:
    account: Account
    passkey: StoredPasskey
    sign_count: int
    backed_up: bool
    synced: bool


def request_options(passkeys: Passkeys) -> dict[str, Any]:
    """Store a challenge and return ``{"publicKey": <request options JSON>}`` (no ``allowCredentials``)."""
    settings = passkeys.settings
    options = generate_authentication_options(
        rp_id=settings.rp_id,
        challenge=passkeys.challenges.issue(Flow.AUTHENTICATION),
        timeout=int(settings.challenge_lifetime.total_seconds() * 1000),
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return {"publicKey": options_to_json_dict(options)}


def sign_in(passkeys: Passkeys, credential: Any, *, forwarded_for: str | None = None) -> Session:
    """Verify an assertion and start a session of its account, as login does.

    :raises InvalidRequest: ``credential`` is not an object.
    :raises PasskeyRefused: anything about the assertion is wrong (the reason is logged).
    :raises TooManyAttempts: too many attempts from the client's address.
    :raises AccountDisabled: the account is disabled.
    :raises EmailNotVerified: verification is required and the email is not verified.
    :raises StorageUnavailable: storage could not be reached.
    """
    require_credential(credential)
    accounts = passkeys.accounts
    admission = accounts.limiter.admit(Action.LOGIN, forwarded_for)
    try:
        checked = _check(passkeys, credential)
    except _Refused as refused:
        admission.wait()
        log_event("passkey_refused", logging.WARNING, reason=refused.reason, user_id=refused.user_id)
        raise PasskeyRefused() from None
    admission.wait()
    account = checked.account
    if account.disabled:
        log_event("passkey_refused", logging.WARNING, reason="account_disabled", user_id=account.user_id)
        raise AccountDisabled()
    if accounts.settings.mail.require_verified and not account.email_verified:
        log_event("passkey_refused", logging.WARNING, reason="email_not_verified", user_id=account.user_id)
        raise EmailNotVerified("Verify your email address first: follow the code in the mail we sent.")
    amr = AMR_SYNCED_KEY if checked.synced else AMR_BOUND_KEY
    log_event("passkey_signed_in", user_id=account.user_id, passkey=checked.passkey.id, amr=amr[0])
    return accounts.start_session(account.user_id, account.email, account.session_version, amr)


def _check(passkeys: Passkeys, credential: Any) -> _Checked:
    settings = passkeys.settings
    try:
        parsed, challenge = assertion(credential)
    except MALFORMED:
        raise _Refused("malformed") from None
    try:
        passkeys.challenges.use(challenge, Flow.AUTHENTICATION)
    except ChallengeRefused as refused:
        raise _Refused(refused.reason) from None
    passkey = passkeys.store.get(parsed.raw_id)
    if passkey is None:
        raise _Refused("unknown_credential")
    account = passkeys.accounts.store.account(passkey.user_id)
    if account is None or passkey.credential_id not in credential_ids(account):
        raise _Refused("unknown_credential", passkey.user_id)
    _check_user_handle(parsed, account)
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=settings.rp_id,
            expected_origin=list(settings.origins),
            credential_public_key=passkey.public_key,
            # The counter is checked below, after the signature, against the row it is written to.
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except MALFORMED as error:
        raise _Refused(refusal_reason(error), account.user_id) from None
    passkey = _record_use(passkeys, passkey, verified.new_sign_count, verified.credential_backed_up)
    synced = verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE
    return _Checked(account, passkey, verified.new_sign_count, verified.credential_backed_up, synced)


def _check_user_handle(parsed: AuthenticationCredential, account: Account) -> None:
    """A discoverable credential names its user; it must be the account the credential is listed on."""
    given, expected = parsed.response.user_handle, user_handle(account)
    if given is None or expected is None or not hmac.compare_digest(given, expected):
        raise _Refused("wrong_user_handle", account.user_id)


def _record_use(
    passkeys: Passkeys, passkey: StoredPasskey, sign_count: int, backed_up: bool
) -> StoredPasskey:
    """Apply the counter rule against the stored counter and write the new one, guarded by the ETag."""
    for _ in range(_MAX_ATTEMPTS):
        if (sign_count > 0 or passkey.sign_count > 0) and sign_count <= passkey.sign_count:
            raise _Refused("sign_count", passkey.user_id)
        now = datetime.now(UTC).replace(microsecond=0)
        written = passkeys.store.record_use(passkey, sign_count=sign_count, backed_up=backed_up, now=now)
        if written is not None:
            return written
        fresh = passkeys.store.get(passkey.credential_id)
        if fresh is None:
            raise _Refused("unknown_credential", passkey.user_id)
        passkey = fresh
    raise _Refused("contended", passkey.user_id)
