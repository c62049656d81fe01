"""What the account row holds of an account's passkeys: its user handle and its credential ids.

Two properties of the account row (``user:<user id>``), so that the gate's one
read of it also tells ``GET /api/me`` how many passkeys there are, and they
move with the row when the email changes:

=====================  ==========================================================================
property               value
=====================  ==========================================================================
``PasskeyUserHandle``  the WebAuthn user handle (``user.id``): 32 random bytes, base64url; never
                       the email or the user id, so an authenticator learns nothing from it
``Passkeys``           a JSON list of the account's credential ids (base64url): the authority on
                       which passkeys are the account's (a credential row not listed is not used)
=====================  ==========================================================================

This module imports nothing heavy: ``shared.http`` reads :func:`passkey_count` on every ``GET /api/me``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from shared.accounts.store import Account

__all__ = [
    "CREDENTIALS_PROPERTY",
    "USER_HANDLE_PROPERTY",
    "b64url",
    "credential_ids",
    "from_b64url",
    "is_passkey_id",
    "passkey_count",
    "passkey_id",
    "user_handle",
]

USER_HANDLE_PROPERTY = "PasskeyUserHandle"
CREDENTIALS_PROPERTY = "Passkeys"
_PASSKEY_ID = re.compile(r"[A-Za-z0-9_-]{43}")


def b64url(data: bytes) -> str:
    """Base64url without padding, as WebAuthn's JSON forms write bytes."""
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def from_b64url(text: str) -> bytes:
    """Decode base64url with or without padding.

    :raises ValueError: ``text`` is not base64url.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))


def passkey_id(credential_id: bytes) -> str:
    """The id the API names a passkey by: base64url of SHA-256 of its credential id (43 characters).

    A credential id may be up to 1,023 bytes, more than a Table key can hold; its digest always fits.
    """
    return b64url(hashlib.sha256(credential_id).digest())


def is_passkey_id(value: str) -> bool:
    """Whether ``value`` has the form of a passkey id."""
    return bool(_PASSKEY_ID.fullmatch(value))


def user_handle(account: Account) -> bytes | None:
    """The account's user handle, or ``None`` before its first passkey ceremony."""
    value = account.raw.get(USER_HANDLE_PROPERTY)
    return from_b64url(value) if isinstance(value, str) and value else None


def credential_ids(account: Account) -> tuple[bytes, ...]:
    """The credential ids of the account's passkeys, oldest first."""
    value = account.raw.get(CREDENTIALS_PROPERTY)
    if not isinstance(value, str) or not value:
        return ()
    return tuple(from_b64url(item) for item in json.loads(value))


def passkey_count(account: Account) -> int:
    """How many passkeys the account has."""
    return len(credential_ids(account))
