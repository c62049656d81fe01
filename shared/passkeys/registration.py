"""Adding a passkey: creation options, then the new credential.

Two requests, both with the account's token:

1. ``POST /api/passkeys/registration/options`` proves the user is present now
   (the password, counted by the lockout as on every route that asks for it
   again, or a sign-in within the last :data:`RECENT_SIGN_IN`) and answers
   ``{"publicKey": ...}``: the creation options in WebAuthn's JSON form, with
   a resident key and user verification required, the account's passkeys in
   ``excludeCredentials``, and the account's random user handle.
2. ``POST /api/passkeys/registration`` ``{"credential", "name"?}`` uses up the
   challenge (bound to this flow and this account), verifies the attestation
   with py_webauthn (origin and RP id exact, user verified), and stores the
   passkey: ``201`` with its public fields, and a notice mail.

An account with a second factor must prove it as well: a session signed in
with it, or a ``code`` beside the password; otherwise a stolen password and
token would add a way in that skips the second factor.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import unicodedata
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from webauthn import generate_registration_options, verify_registration_response
from webauthn.helpers import options_to_json_dict
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from shared.accounts.store import Account
from shared.errors import ConflictError, InvalidPasskey, InvalidRequest, NotFound, PasskeyLimitReached
from shared.events import log_event
from shared.passkeys.account_row import credential_ids, user_handle
from shared.passkeys.ceremony import MALFORMED, attestation, refusal_reason, require_credential
from shared.passkeys.challenges import ChallengeRefused, Flow
from shared.passkeys.credentials import MAX_CREDENTIAL_ID_BYTES, StoredPasskey
from shared.passkeys.service import Passkeys
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest
from shared.tokens.access_tokens import VerifiedToken

__all__ = ["MAX_NAME_LENGTH", "RECENT_SIGN_IN", "add_passkey", "check_name", "creation_options"]

#: A sign-in this recent proves presence without the password again.
RECENT_SIGN_IN = timedelta(minutes=5)
MAX_NAME_LENGTH = 64
USER_HANDLE_BYTES = 32
#: Reads of the account row before giving up on a write that keeps losing races.
_MAX_ATTEMPTS = 10


def creation_options(
    passkeys: Passkeys,
    account: Account,
    token: VerifiedToken,
    *,
    password: str | None,
    code: str | None,
) -> dict[str, Any]:
    """Check that the user is present, and return ``{"publicKey": <creation options JSON>}``.

    :raises InvalidRequest: no password and no recent sign-in; or a second factor is on and
        neither this session nor a ``code`` proves it.
    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises InvalidCode: the code is wrong.
    :raises TooManyAttempts: the account is locked out.
    :raises PasskeyLimitReached: the account has ``AUTH_MAX_PASSKEYS`` passkeys.
    :raises ConflictError: the account is being changed (an email change); retry.
    """
    _check_presence(passkeys, account, token, password=password, code=code)
    settings = passkeys.settings
    account, handle = _with_user_handle(passkeys, account)
    existing = credential_ids(account)
    if len(existing) >= settings.max_passkeys:
        raise PasskeyLimitReached(f"The account has {settings.max_passkeys} passkeys; remove one first.")
    challenge = passkeys.challenges.issue(Flow.REGISTRATION, user_id=account.user_id)
    options = generate_registration_options(
        rp_id=settings.rp_id,
        rp_name=settings.rp_name,
        user_id=handle,
        user_name=account.email,
        user_display_name=account.email,
        challenge=challenge,
        timeout=int(settings.challenge_lifetime.total_seconds() * 1000),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=credential) for credential in existing],
    )
    return {"publicKey": options_to_json_dict(options)}


def add_passkey(passkeys: Passkeys, account: Account, credential: Any, name: str | None) -> StoredPasskey:
    """Verify a new credential against its challenge and store it as the account's passkey.

    :raises InvalidRequest: the name is not acceptable, or ``credential`` is not an object.
    :raises InvalidPasskey: the credential is malformed, answers no live challenge of this
        account's, or does not verify (origin, RP id, user verification, attestation).
    :raises PasskeyExists: the credential is registered already.
    :raises PasskeyLimitReached: the account has ``AUTH_MAX_PASSKEYS`` passkeys.
    """
    chosen = check_name(name) if name is not None else None
    require_credential(credential)
    settings = passkeys.settings
    try:
        parsed, challenge = attestation(credential)
    except MALFORMED:
        raise _refused(account, "malformed") from None
    try:
        passkeys.challenges.use(challenge, Flow.REGISTRATION, user_id=account.user_id)
    except ChallengeRefused as refused:
        raise _refused(account, refused.reason) from None
    try:
        verified = verify_registration_response(
            credential=parsed,
            expected_challenge=challenge,
            expected_rp_id=settings.rp_id,
            expected_origin=list(settings.origins),
            require_user_verification=True,
        )
    except MALFORMED as error:
        raise _refused(account, refusal_reason(error)) from None
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        raise _refused(account, "credential_id_too_long")
    passkey = StoredPasskey(
        credential_id=verified.credential_id,
        user_id=account.user_id,
        name="",
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        created_at=datetime.now(UTC).replace(microsecond=0),
        aaguid=verified.aaguid,
        transports=tuple(str(t.value) for t in parsed.response.transports or ()),
        backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
    )
    passkey = passkeys.store.create(_named(passkey, chosen))
    try:
        account = _list(passkeys, account, passkey)
    except Exception:
        passkeys.store.delete(passkey.credential_id)
        raise
    log_event("passkey_added", user_id=account.user_id, passkey=passkey.id, provider=passkey.aaguid)
    notice = MailRequest(MailKind.PASSKEY_ADDED, account.email, user_id=account.user_id)
    passkeys.accounts.outbox.send_after_change(notice)
    return passkey


def check_name(name: str) -> str:
    """A passkey's name, trimmed: 1 to :data:`MAX_NAME_LENGTH` characters, no control characters.

    :raises InvalidRequest: it is empty, too long or holds a control character.
    """
    trimmed = name.strip()
    if not trimmed or len(trimmed) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"The field 'name' must be 1 to {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(char).startswith("C") for char in trimmed):
        raise InvalidRequest("The field 'name' must not contain control characters.")
    return trimmed


def _check_presence(
    passkeys: Passkeys, account: Account, token: VerifiedToken, *, password: str | None, code: str | None
) -> None:
    from shared.mfa.auth import check_code  # noqa: PLC0415 - only when a second factor is on

    accounts = passkeys.accounts
    second_factor_shown = token.has_second_factor or not account.mfa_totp
    if password is not None:
        accounts.check_password(account, password)
        if not second_factor_shown:
            if code is None:
                raise InvalidRequest("The field 'code' is required: the account has a second factor.")
            check_code(accounts, account, code)
        return
    started = token.session_started
    if started is None or datetime.now(UTC) - started > RECENT_SIGN_IN or not second_factor_shown:
        raise InvalidRequest(
            "The field 'password' is required: the last sign-in was more than 5 minutes ago."
        )


def _with_user_handle(passkeys: Passkeys, account: Account) -> tuple[Account, bytes]:
    """The account and its user handle, giving it one (random, stored on its row) if it has none."""
    for _ in range(_MAX_ATTEMPTS):
        if account.in_move:
            raise ConflictError("The account's email is being changed; try again in a moment.")
        handle = user_handle(account)
        if handle is not None:
            return account, handle
        with contextlib.suppress(ConflictError):
            passkeys.store.set_user_handle(account, secrets.token_bytes(USER_HANDLE_BYTES))
        account = _fresh(passkeys, account)
    raise ConflictError()


def _list(passkeys: Passkeys, account: Account, passkey: StoredPasskey) -> Account:
    """Add the passkey to the account's list, under the limit, retrying on concurrent changes."""
    limit = passkeys.settings.max_passkeys
    for _ in range(_MAX_ATTEMPTS):
        if account.in_move:
            raise ConflictError("The account's email is being changed; try again in a moment.")
        listed = credential_ids(account)
        if len(listed) >= limit:
            raise PasskeyLimitReached(f"The account has {limit} passkeys; remove one first.")
        try:
            passkeys.store.list_on_account(account, (*listed, passkey.credential_id))
        except ConflictError:
            account = _fresh(passkeys, account)
            continue
        return account
    raise ConflictError()


def _fresh(passkeys: Passkeys, account: Account) -> Account:
    fresh = passkeys.accounts.store.account(account.user_id)
    if fresh is None:
        raise NotFound("No such account.")
    return fresh


def _named(passkey: StoredPasskey, chosen: str | None) -> StoredPasskey:
    return replace(passkey, name=chosen or passkey.provider or "Passkey")


def _refused(account: Account, reason: str) -> InvalidPasskey:
    log_event("passkey_refused", logging.WARNING, flow="registration", reason=reason, user_id=account.user_id)
    return InvalidPasskey(reason)
