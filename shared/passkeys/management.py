"""Managing an account's passkeys: list, rename, remove (by the user, or by an operator).

A removal asks for the password (under the lockout) or a current
second-factor code, and mails a notice. Removing the last passkey locks no
one out: the password, a reset by mail and recovery codes keep working as
they always do, since a passkey is a way in added beside them, never instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.accounts.store import Account
from shared.errors import ConflictError, InvalidRequest, NotFound
from shared.events import log_event
from shared.passkeys.account_row import credential_ids
from shared.passkeys.credentials import StoredPasskey
from shared.passkeys.registration import check_name
from shared.passkeys.service import Passkeys
from shared.settings.mail import MailKind
from shared.storage.outbox import MailRequest

__all__ = [
    "list_passkeys",
    "passkey_json",
    "remove_as_operator",
    "remove_passkey",
    "rename_passkey",
    "take_off",
]

_MAX_ATTEMPTS = 10


def list_passkeys(passkeys: Passkeys, account: Account) -> list[StoredPasskey]:
    """The account's passkeys, oldest first."""
    return passkeys.store.list(account)


def rename_passkey(passkeys: Passkeys, account: Account, passkey_id: str, name: str) -> StoredPasskey:
    """Give one of the account's passkeys a new name.

    :raises NotFound: the account has no passkey of that id (another account's included).
    :raises InvalidRequest: the name is not acceptable.
    """
    chosen = check_name(name)
    found = passkeys.store.find(account, passkey_id)
    if found is None or found[1] is None:
        raise NotFound("No such passkey.")
    return passkeys.store.rename(found[1], chosen)


def remove_passkey(
    passkeys: Passkeys,
    account: Account,
    passkey_id: str,
    *,
    password: str | None,
    code: str | None,
) -> None:
    """Remove one of the account's passkeys after the password or a second-factor code; mail a notice.

    :raises NotFound: the account has no passkey of that id.
    :raises InvalidRequest: neither a password nor (with a second factor on) a code was given.
    :raises InvalidCredentials: the password is wrong (counted by the lockout).
    :raises InvalidCode: the code is wrong.
    """
    found = passkeys.store.find(account, passkey_id)
    if found is None:
        raise NotFound("No such passkey.")
    accounts = passkeys.accounts
    if password is not None:
        accounts.check_password(account, password)
    elif code is not None and account.mfa_totp:
        from shared.mfa.auth import check_code  # noqa: PLC0415 - only when a second factor is on

        check_code(accounts, account, code)
    else:
        field = "'password' (or 'code')" if account.mfa_totp else "'password'"
        raise InvalidRequest(f"The field {field} is required.")
    take_off(passkeys, account, found[0])
    log_event("passkey_removed", user_id=account.user_id, passkey=passkey_id)
    notice = MailRequest(MailKind.PASSKEY_REMOVED, account.email, user_id=account.user_id)
    accounts.outbox.send_after_change(notice)


def remove_as_operator(passkeys: Passkeys, account: Account, passkey_id: str) -> None:
    """Remove a passkey for its owner who lost the device (``python -m tools.admin remove-passkey``).

    The owner is told by mail, as when they remove one themselves.

    :raises NotFound: the account has no passkey of that id.
    """
    found = passkeys.store.find(account, passkey_id)
    if found is None:
        raise NotFound(f"no passkey {passkey_id!r} of {account.user_id}")
    take_off(passkeys, account, found[0])
    log_event("admin_remove_passkey", user_id=account.user_id, passkey=passkey_id)
    notice = MailRequest(MailKind.PASSKEY_REMOVED, account.email, user_id=account.user_id)
    passkeys.accounts.outbox.send_after_change(notice)


def take_off(passkeys: Passkeys, account: Account, credential_id: bytes) -> None:
    """Delete a passkey's row, then take it off the account's list (retrying on concurrent changes).

    In that order a removal that stops halfway leaves the passkey listed but unusable, and
    repeating the request finishes it. Also what the operator's tool does.

    :raises ConflictError: the account row kept changing.
    """
    passkeys.store.delete(credential_id)
    for _ in range(_MAX_ATTEMPTS):
        listed = credential_ids(account)
        if credential_id not in listed:
            return
        try:
            passkeys.store.list_on_account(account, tuple(c for c in listed if c != credential_id))
        except ConflictError:
            fresh = passkeys.accounts.store.account(account.user_id)
            if fresh is None:
                return
            account = fresh
            continue
        return
    raise ConflictError()


def passkey_json(passkey: StoredPasskey) -> dict[str, Any]:
    """What the API shows of a passkey."""
    return {
        "id": passkey.id,
        "name": passkey.name,
        "createdAt": _iso(passkey.created_at),
        "lastUsedAt": _iso(passkey.last_used_at) if passkey.last_used_at else None,
        "backedUp": passkey.backed_up,
        "backupEligible": passkey.backup_eligible,
        "provider": passkey.provider,
    }


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
