"""A signed-in user proves again that it is them, before a change that cannot be undone.

The password (under the same lockout as login), and with a second factor on, a
current TOTP or an unused recovery code: what deleting an account asks for; and deleting it.
"""

from __future__ import annotations

import contextlib

from shared.accounts.service import AccountService
from shared.accounts.store import Account, Credentials
from shared.errors import InvalidRequest, StorageUnavailable

__all__ = ["delete_own_account", "reauthenticate"]


def delete_own_account(service: AccountService, account: Account, password: str, *, code: str | None) -> None:
    """``DELETE /api/me``: prove it again (:func:`reauthenticate`), then delete every row of the account.

    The passkeys' credential rows live outside the account's partition: they go after it, and a
    storage failure there leaves rows that can sign in no more (their account is gone).

    :raises: what :func:`reauthenticate` raises; ``ConflictError`` if the account changed meanwhile.
    """
    service.delete_account(account, reauthenticate(service, account, password, code=code))
    from shared.passkeys.credentials import PasskeyStore  # noqa: PLC0415 - only when deleting

    with contextlib.suppress(StorageUnavailable):
        PasskeyStore(service.settings.storage).delete_all(account)


def reauthenticate(
    service: AccountService, account: Account, password: str, *, code: str | None
) -> Credentials:
    """Check the password of ``account`` and, if it has a second factor, ``code``.

    :returns: the login row the password was checked against.
    :raises InvalidCredentials: ``password`` is wrong.
    :raises TooManyAttempts: the email is locked out.
    :raises InvalidRequest: TOTP is on and no ``code`` was given.
    :raises InvalidCode: the code is wrong.
    """
    credentials = service.check_password(account, password)
    if account.mfa_totp:
        # Imported here: the second factor's libraries stay out of the cold start of DELETE /api/me.
        from shared.mfa.auth import check_code  # noqa: PLC0415

        if code is None:
            raise InvalidRequest("The field 'code' is required: the account has a second factor.")
        check_code(service, account, code)
    return credentials
