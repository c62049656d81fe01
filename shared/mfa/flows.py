"""The second factor's steps: enrol, confirm, log in with a code, regenerate recovery codes, disable.

Every step that changes the second factor asks for the password again (under
the lockout). A TOTP code is accepted once per account: the last used time
step is stored on the second-factor row, and the write that accepts a code is
guarded by the row's ETag, so the same code sent twice, even to two instances
at once, succeeds once. A recovery code is removed in the same guarded write.

Login with a second factor is two requests: ``POST /api/login`` answers
``403 mfa_required`` with an ``mfaToken`` after the password checked out, and
``POST /api/login/mfa`` trades that token and a code for a session. The token
is bound to the account and to one challenge id stored on the row; a
successful second step clears it, so it works once. Each code tried with a
challenge is counted on the row before it is checked (an ETag-guarded write, so
two instances cannot both spend the last try); after
:data:`MAX_CHALLENGE_TRIES` the token is refused even with the right code, and
a fresh login (if the lockout allows) gives a new one. Wrong codes also count
against the email's lockout, which only a completed second step clears.

Secrets sealed under a previous ``AUTH_ENCRYPTION_KEY`` are sealed again under
the current one in the same guarded write that accepts a code (:func:`resealed`),
so a key rotation completes by itself for accounts in use; ``python -m
tools.admin.command reencrypt`` does the rest. The recovery codes' digest key is kept
on the row, sealed the same way, so codes outlive the key they were made under.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.accounts.service import AccountService, Session
from shared.accounts.store import Account
from shared.errors import ConflictError, InvalidCode, InvalidRequest, InvalidToken, MfaAlreadyEnabled
from shared.events import log_event
from shared.mfa import recovery_codes, totp
from shared.mfa.encryption import EncryptionKeys, SecretUnreadable, decrypt, encrypt, needs_reencryption
from shared.mfa.store import MfaRecord, MfaStore, mfa_store
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest
from shared.tokens.access_tokens import issue_challenge, verify_challenge

__all__ = [
    "AMR_PASSWORD",
    "AMR_RECOVERY_CODE",
    "AMR_TOTP",
    "MAX_CHALLENGE_TRIES",
    "MAX_TRY_WRITES",
    "Enrolment",
    "check_code",
    "confirm_enrolment",
    "disable",
    "issue_challenge_for",
    "log_in_with_code",
    "opens",
    "regenerate_recovery_codes",
    "resealed",
    "start_enrolment",
]

#: ``amr`` of each way of signing in (RFC 8176; "rec" is ours, for a recovery code).
AMR_PASSWORD = ("pwd",)
AMR_TOTP = ("pwd", "otp", "mfa")
AMR_RECOVERY_CODE = ("pwd", "rec", "mfa")
#: Codes one ``mfaToken`` may try; after that it is refused, right code or not.
MAX_CHALLENGE_TRIES = 5
#: A try that keeps losing ETag races to other requests for the same row gives up after this many reads.
MAX_TRY_WRITES = 20
#: Bytes of one recovery-code digest key (HMAC-SHA256).
_DIGEST_KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What an authenticator app needs, shown once: the secret, its URI and the URI's QR code."""

    secret: str
    otpauth_uri: str
    qr_code: str


def start_enrolment(service: AccountService, account: Account, password: str) -> Enrolment:
    """Check the password and store a new, pending secret (replacing a pending one).

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed.
    :raises MfaAlreadyEnabled: the account has a confirmed authenticator.
    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises TooManyAttempts: the account is locked out.
    """
    keys = service.settings.mfa.keys()
    service.check_password(account, password)
    record = _store(service).mfa_record(account)
    if account.mfa_totp or record.secret:
        raise MfaAlreadyEnabled()
    secret = totp.new_secret()
    sealed = encrypt(keys, secret.encode("ascii"), associated_data=account.user_id.encode("utf-8"))
    if not _store(service).save_mfa(record, Pending=sealed):
        raise ConflictError()
    uri = totp.provisioning_uri(secret, account=account.email, issuer=service.settings.mfa.issuer)
    return Enrolment(secret=secret, otpauth_uri=uri, qr_code=totp.qr_code_data_uri(uri))


def confirm_enrolment(service: AccountService, account: Account, code: str) -> tuple[list[str], Session]:
    """Turn TOTP on with a first code; return the recovery codes and a session for this device.

    Every other session ends (they were proven by a password alone): the
    session version moves on, and the caller's device gets a fresh token.

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed.
    :raises MfaAlreadyEnabled: TOTP is on already.
    :raises InvalidCode: no pending enrolment, or the code is wrong.
    :raises ConflictError: a concurrent change; retry.
    """
    keys = service.settings.mfa.keys()
    record = _store(service).mfa_record(account)
    if account.mfa_totp or record.secret:
        raise MfaAlreadyEnabled()
    if record.pending is None:
        raise InvalidCode("no pending enrolment")
    secret = _unseal(keys, record.pending, account.user_id)
    step = totp.accepted_step(secret, code, now=datetime.now(UTC), last_used_step=record.last_step)
    if step is None:
        log_event("mfa_failed", logging.WARNING, reason="wrong_code", step="confirm", user_id=account.user_id)
        raise InvalidCode("wrong code")
    codes = recovery_codes.new_recovery_codes()
    changes: dict[str, object] = {
        "Secret": record.pending
        if not needs_reencryption(keys, record.pending)
        else _seal(keys, secret, account.user_id),
        "Pending": "",
        "LastStep": step,
        **_new_codes(keys, account.user_id, codes),
    }
    version = _store(service).change_mfa(
        account, record, changes, enabled=True, recovery_codes_left=len(codes), revoke_sessions=True
    )
    log_event("mfa_enrolled", user_id=account.user_id)
    session = service.start_session(account.user_id, account.email, version, AMR_TOTP)
    return codes, session


def issue_challenge_for(service: AccountService, account: Account) -> str:
    """Store a new challenge on the account's second-factor row and return its token.

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed (fail closed).
    """
    service.settings.mfa.keys()
    record = _store(service).mfa_record(account)
    challenge_id = secrets.token_urlsafe(16)
    lifetime = service.settings.mfa.challenge_lifetime
    expires = datetime.now(UTC) + lifetime
    if not _store(service).save_mfa(
        record, Challenge=challenge_id, ChallengeExpires=expires, ChallengeTries=0
    ):
        raise ConflictError()
    log_event("mfa_challenge_issued", user_id=account.user_id)
    return issue_challenge(service.settings.tokens, account.user_id, challenge_id, lifetime)


def log_in_with_code(
    service: AccountService, mfa_token: str, *, code: str | None, recovery_code: str | None
) -> Session:
    """The second step of a login: the challenge's token and a TOTP or recovery code.

    Each code tried is counted with the challenge first (at most
    :data:`MAX_CHALLENGE_TRIES`); a wrong code also counts against the email's
    lockout, like a wrong password. The right code clears the lockout's
    consecutive count, and re-seals the row under the current key if needed.
    A recovery code sends the owner a notice saying how many are left.

    :raises InvalidToken: the token is forged, expired, used, has spent its
        tries, or the account is gone.
    :raises InvalidRequest: neither or both of ``code`` and ``recovery_code``.
    :raises TooManyAttempts: the email is locked out.
    :raises InvalidCode: the code is wrong, used, or from a step not later than the last used one.
    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed.
    """
    if (code is None) == (recovery_code is None):
        raise InvalidRequest("Send either 'code' or 'recoveryCode'.")
    user_id, challenge_id = verify_challenge(service.settings.tokens, mfa_token)
    keys = service.settings.mfa.keys()
    account = service.store.account(user_id)
    if account is None or account.disabled:
        raise InvalidToken("challenge of a deleted or disabled account")
    _live_challenge(_store(service).mfa_record(account), challenge_id, user_id)
    login = service.refuse_if_locked_out(account.email)
    record = _spend_try(service, account, challenge_id)
    now = datetime.now(UTC)
    changes, amr = _accept_code(keys, account, record, code=code, recovery_code=recovery_code, now=now)
    if changes is None:
        log_event(
            "mfa_failed", logging.WARNING, reason="wrong_code", user_id=user_id, tries=record.challenge_tries
        )
        service.count_failure(login, InvalidCode("wrong second factor"))
    changes |= {"Challenge": "", "ChallengeTries": 0}
    left = len(json.loads(str(changes["RecoveryCodes"]))) if "RecoveryCodes" in changes else None
    try:
        _store(service).change_mfa(
            account, record, changes, recovery_codes_left=left, clear_failures=not login.throttle.is_clear
        )
    except ConflictError:
        # Another request used this challenge or a code first (the row's ETag moved on).
        log_event("mfa_failed", logging.WARNING, reason="replayed", user_id=user_id)
        raise InvalidCode("used concurrently") from None
    _log_resealed(changes, user_id)
    log_event("mfa_succeeded", user_id=user_id, method=amr[1])
    if left is not None:
        log_event("recovery_code_used", user_id=user_id, left=left)
        notice = MailRequest(MailKind.RECOVERY_CODE_USED, account.email, user_id=account.user_id)
        service.outbox.send_after_change(notice)
    return service.start_session(account.user_id, account.email, account.session_version, amr)


def _live_challenge(record: MfaRecord, challenge_id: str, user_id: str) -> MfaRecord:
    """``record`` if its challenge is ``challenge_id``, unexpired and with tries left.

    :raises InvalidToken: the challenge was used, replaced, has expired or has spent its tries.
    """
    live = record.challenge_expires is not None and record.challenge_expires > datetime.now(UTC)
    if record.challenge != challenge_id or not live or record.secret is None:
        raise InvalidToken("challenge used, replaced or expired")
    if record.challenge_tries >= MAX_CHALLENGE_TRIES:
        log_event("mfa_failed", logging.WARNING, reason="challenge_spent", user_id=user_id)
        raise InvalidToken("challenge spent its tries")
    return record


def _spend_try(service: AccountService, account: Account, challenge_id: str) -> MfaRecord:
    """Count one try against the challenge before its code is checked; return the row as written.

    The write is guarded by the row's ETag: a writer that loses reads again, so
    concurrent tries (on any instance) are all counted and none beyond the last.

    :raises InvalidToken: the challenge is no longer live (see :func:`_live_challenge`).
    :raises ConflictError: the row kept changing under us.
    """
    for _ in range(MAX_TRY_WRITES):
        record = _live_challenge(_store(service).mfa_record(account), challenge_id, account.user_id)
        spent = _store(service).spend_challenge_try(record)
        if spent is not None:
            return spent
    raise ConflictError()


def regenerate_recovery_codes(
    service: AccountService, account: Account, password: str, code: str
) -> list[str]:
    """Replace the recovery codes (the old set stops working), after the password and a code.

    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises InvalidCode: the code is wrong (a current TOTP or an unused recovery code).
    :raises InvalidRequest: TOTP is not on.
    """
    keys, record, changes = _checked_factor(service, account, password, code)
    fresh = recovery_codes.new_recovery_codes()
    changes |= _new_codes(keys, account.user_id, fresh)
    try:
        _store(service).change_mfa(account, record, changes, recovery_codes_left=len(fresh))
    except ConflictError:
        raise InvalidCode("used concurrently") from None
    _log_resealed(changes, account.user_id)
    log_event("recovery_codes_regenerated", user_id=account.user_id)
    notice = MailRequest(MailKind.RECOVERY_CODES_REGENERATED, account.email, user_id=account.user_id)
    service.outbox.send_after_change(notice)
    return fresh


def disable(service: AccountService, account: Account, password: str, code: str) -> None:
    """Turn the second factor off, after the password and a code; the owner is told by mail.

    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises InvalidCode: the code is wrong.
    :raises InvalidRequest: TOTP is not on.
    """
    _, record, _ = _checked_factor(service, account, password, code)
    try:
        _store(service).change_mfa(account, record, None, enabled=False, recovery_codes_left=0)
    except ConflictError:
        raise InvalidCode("used concurrently") from None
    log_event("mfa_disabled", user_id=account.user_id)
    service.outbox.send_after_change(
        MailRequest(MailKind.MFA_DISABLED, account.email, user_id=account.user_id)
    )


def check_code(service: AccountService, account: Account, code: str) -> None:
    """Check a current TOTP or an unused recovery code of ``account`` (for a step it allows once).

    :raises InvalidCode: the code is wrong.
    """
    keys = service.settings.mfa.keys()
    _accepted_changes(service, keys, account, _store(service).mfa_record(account), code)


def _checked_factor(
    service: AccountService, account: Account, password: str, code: str
) -> tuple[EncryptionKeys, MfaRecord, dict[str, object]]:
    """Check the password and a code; return the keys, the row, and the changes that use the code."""
    keys = service.settings.mfa.keys()
    service.check_password(account, password)
    record = _store(service).mfa_record(account)
    if not account.mfa_totp or record.secret is None:
        raise InvalidRequest("The second factor is not on.")
    return keys, record, _accepted_changes(service, keys, account, record, code)


def _accepted_changes(
    service: AccountService, keys: EncryptionKeys, account: Account, record: MfaRecord, code: str
) -> dict[str, object]:
    """The row changes that use ``code`` (TOTP or recovery code), re-sealing the row if needed.

    A wrong code counts against the email's lockout, as at login.

    :raises TooManyAttempts: the email is locked out.
    :raises InvalidCode: it is neither a current TOTP code nor an unused recovery code.
    """
    login = service.refuse_if_locked_out(account.email)
    digits = code.replace(" ", "").strip()
    as_totp = digits if digits.isdigit() else None
    changes, _ = _accept_code(
        keys, account, record, code=as_totp, recovery_code=None if as_totp else code, now=datetime.now(UTC)
    )
    if changes is None:
        log_event("mfa_failed", logging.WARNING, reason="wrong_code", user_id=account.user_id)
        service.count_failure(login, InvalidCode("wrong code"))
    return changes


def _accept_code(
    keys: EncryptionKeys,
    account: Account,
    record: MfaRecord,
    *,
    code: str | None,
    recovery_code: str | None,
    now: datetime,
) -> tuple[dict[str, object] | None, tuple[str, ...]]:
    """The row changes that use a code, and the session's ``amr``; ``None`` changes if it is wrong.

    The changes also re-seal what a previous key sealed (:func:`resealed`).
    """
    if record.secret is None:
        return None, AMR_PASSWORD
    if code is not None:
        secret = _unseal(keys, record.secret, account.user_id)
        step = totp.accepted_step(secret, code, now=now, last_used_step=record.last_step)
        if step is None:
            return None, AMR_TOTP
        return {"LastStep": step, **resealed(keys, record)}, AMR_TOTP
    digest_keys = _digest_keys(keys, record)
    found = [
        recovery_codes.find(key, account.user_id, recovery_code or "", record.recovery_digests)
        for key in digest_keys
    ]
    matched = next((n for n, i in enumerate(found) if i is not None), None)
    if matched is None:
        return None, AMR_RECOVERY_CODE
    index = found[matched]
    left = [d for i, d in enumerate(record.recovery_digests) if i != index]
    changes: dict[str, object] = {"RecoveryCodes": json.dumps(left), **resealed(keys, record)}
    if len(digest_keys) > 1 or needs_reencryption(keys, record.recovery_key or ""):
        # The code showed which key made the set: keep that one alone, sealed under the current key.
        changes["RecoveryKey"] = _seal_digest_keys(keys, account.user_id, [digest_keys[matched]])
    return changes, AMR_RECOVERY_CODE


def resealed(keys: EncryptionKeys, record: MfaRecord) -> dict[str, object]:
    """The row changes that seal under the current key what ``record`` holds sealed under a previous one.

    The TOTP secret (and a pending one) is opened and sealed again; the
    recovery codes' digest key, or for codes made before it was stored, the
    keys derived from every configured encryption key (any of which may have
    made them), is sealed under the current key. Empty when nothing needs it.
    Put the changes in the write that accepts a code, guarded by the row's ETag.

    :raises InvalidCode: a secret does not open (logged ``mfa_secret_unreadable``).
    """
    changes: dict[str, object] = {}
    for name, sealed in (("Secret", record.secret), ("Pending", record.pending)):
        if sealed and needs_reencryption(keys, sealed):
            changes[name] = _seal(keys, _unseal(keys, sealed, record.user_id), record.user_id)
    if record.recovery_digests and (
        record.recovery_key is None or needs_reencryption(keys, record.recovery_key)
    ):
        changes["RecoveryKey"] = _seal_digest_keys(keys, record.user_id, _digest_keys(keys, record))
    return changes


def opens(keys: EncryptionKeys, record: MfaRecord) -> bool:
    """Whether the configured keys open the row's TOTP secret (if not, logged ``mfa_secret_unreadable``)."""
    if record.secret is None:
        return True
    try:
        _unseal(keys, record.secret, record.user_id)
    except InvalidCode:
        return False
    return True


def _log_resealed(changes: dict[str, object], user_id: str) -> None:
    names = sorted(name for name in ("Secret", "Pending", "RecoveryKey") if name in changes)
    if names:
        log_event("mfa_resealed", user_id=user_id, fields=",".join(names))


def _new_codes(keys: EncryptionKeys, user_id: str, codes: list[str]) -> dict[str, object]:
    """The row changes that store a new set of recovery codes: their digests and their digest key."""
    key = recovery_codes.recovery_code_key(keys.current)
    digests = [recovery_codes.digest(key, user_id, code) for code in codes]
    return {"RecoveryCodes": json.dumps(digests), "RecoveryKey": _seal_digest_keys(keys, user_id, [key])}


def _digest_keys(keys: EncryptionKeys, record: MfaRecord) -> list[bytes]:
    """The keys the row's recovery codes may have been digested under.

    The stored (sealed) key if there is one; for a set made before keys were
    stored, the key derived from each configured encryption key.
    """
    if record.recovery_key is None:
        return [recovery_codes.recovery_code_key(key) for key in (keys.current, *keys.previous)]
    opened = _open(keys, record.recovery_key, _recovery_key_data(record.user_id), record.user_id)
    return [opened[i : i + _DIGEST_KEY_BYTES] for i in range(0, len(opened), _DIGEST_KEY_BYTES)]


def _seal_digest_keys(keys: EncryptionKeys, user_id: str, digest_keys: list[bytes]) -> str:
    return encrypt(keys, b"".join(digest_keys), associated_data=_recovery_key_data(user_id))


def _recovery_key_data(user_id: str) -> bytes:
    """Associated data of the sealed digest key: the owner and the purpose (apart from the TOTP secret's)."""
    return user_id.encode("utf-8") + b"\x00recovery-code-key"


def _seal(keys: EncryptionKeys, secret: str, user_id: str) -> str:
    return encrypt(keys, secret.encode("ascii"), associated_data=user_id.encode("utf-8"))


def _unseal(keys: EncryptionKeys, sealed: str, user_id: str) -> str:
    return _open(keys, sealed, user_id.encode("utf-8"), user_id).decode("ascii")


def _open(keys: EncryptionKeys, sealed: str, associated_data: bytes, user_id: str) -> bytes:
    try:
        return decrypt(keys, sealed, associated_data=associated_data)
    except SecretUnreadable as error:
        log_event("mfa_secret_unreadable", logging.ERROR, reason=error.reason, user_id=user_id)
        raise InvalidCode("secret unreadable") from None


def _store(service: AccountService) -> MfaStore:
    return mfa_store(service.settings.storage)
