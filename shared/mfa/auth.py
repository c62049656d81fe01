"""The second factor's checks: is this code right, and what does using it change on the row.

A TOTP code is accepted once per account: the last used time step is stored on
the second-factor row, and the write that accepts a code is guarded by the
row's ETag, so the same code sent twice, even to two instances at once,
succeeds once. A recovery code is removed in the same guarded write.

Secrets sealed under a previous ``AUTH_ENCRYPTION_KEY`` are sealed again under
the current one in the same guarded write that accepts a code (:func:`resealed`),
so a key rotation completes by itself for accounts in use; ``python -m
tools.admin.command reencrypt`` does the rest. The recovery codes' digest key is kept
on the row, sealed the same way, so codes outlive the key they were made under.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from shared.accounts.service import AccountService
from shared.accounts.store import Account
from shared.errors import InvalidCode
from shared.events import log_event
from shared.mfa import recovery_codes, totp
from shared.mfa.encryption import EncryptionKeys, SecretUnreadable, decrypt, encrypt, needs_reencryption
from shared.mfa.store import MfaRecord, MfaStore, mfa_store

__all__ = [
    "AMR_PASSWORD",
    "AMR_RECOVERY_CODE",
    "AMR_TOTP",
    "accept_code",
    "accepted_changes",
    "check_code",
    "log_resealed",
    "new_codes",
    "opens",
    "resealed",
    "seal",
    "store_of",
    "unseal",
]

#: ``amr`` of each way of signing in (RFC 8176; "rec" is ours, for a recovery code).
AMR_PASSWORD = ("pwd",)
AMR_TOTP = ("pwd", "otp", "mfa")
AMR_RECOVERY_CODE = ("pwd", "rec", "mfa")
#: Bytes of one recovery-code digest key (HMAC-SHA256).
_DIGEST_KEY_BYTES = 32


def check_code(service: AccountService, account: Account, code: str) -> None:
    """Check a current TOTP or an unused recovery code of ``account`` (for a step it allows once).

    :raises InvalidCode: the code is wrong.
    """
    keys = service.settings.mfa.keys()
    accepted_changes(service, keys, account, store_of(service).mfa_record(account), code)


def accepted_changes(
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
    changes, _ = accept_code(
        keys, account, record, code=as_totp, recovery_code=None if as_totp else code, now=datetime.now(UTC)
    )
    if changes is None:
        log_event("mfa_failed", logging.WARNING, reason="wrong_code", user_id=account.user_id)
        service.count_failure(login, InvalidCode("wrong code"))
    return changes


def accept_code(
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
        secret = unseal(keys, record.secret, account.user_id)
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
            changes[name] = seal(keys, unseal(keys, sealed, record.user_id), record.user_id)
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
        unseal(keys, record.secret, record.user_id)
    except InvalidCode:
        return False
    return True


def log_resealed(changes: dict[str, object], user_id: str) -> None:
    names = sorted(name for name in ("Secret", "Pending", "RecoveryKey") if name in changes)
    if names:
        log_event("mfa_resealed", user_id=user_id, fields=",".join(names))


def new_codes(keys: EncryptionKeys, user_id: str, codes: list[str]) -> dict[str, object]:
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


def seal(keys: EncryptionKeys, secret: str, user_id: str) -> str:
    return encrypt(keys, secret.encode("ascii"), associated_data=user_id.encode("utf-8"))


def unseal(keys: EncryptionKeys, sealed: str, user_id: str) -> str:
    return _open(keys, sealed, user_id.encode("utf-8"), user_id).decode("ascii")


def _open(keys: EncryptionKeys, sealed: str, associated_data: bytes, user_id: str) -> bytes:
    try:
        return decrypt(keys, sealed, associated_data=associated_data)
    except SecretUnreadable as error:
        log_event("mfa_secret_unreadable", logging.ERROR, reason=error.reason, user_id=user_id)
        raise InvalidCode("secret unreadable") from None


def store_of(service: AccountService) -> MfaStore:
    return mfa_store(service.settings.storage)
