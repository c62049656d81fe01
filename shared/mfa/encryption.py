"""Secrets at rest (TOTP secrets): sealed with AES-256-GCM, under rotating keys.

A sealed value is one ASCII string that names the key that sealed it::

    v1.<key id>.<nonce>.<ciphertext and tag>

with the nonce (96 random bits, fresh for every value) and the ciphertext in
URL-safe base64 without padding, and the key id from :func:`key_id`. The
header ``v1.<key id>`` is authenticated along with the caller's associated
data, which should name what the secret belongs to (an account's user id and
the secret's purpose): a sealed value copied to another account, or to another
use, does not open there, and neither does one changed in any way.

Keys come from the app settings ``AUTH_ENCRYPTION_KEY`` (the current key,
which seals) and ``AUTH_PREVIOUS_ENCRYPTION_KEYS`` (keys that still open what
they sealed during a rotation), each 32 bytes written as 64 hex digits. After
a rotation, :func:`needs_reencryption` tells which values to seal again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING

from shared.settings.mfa import KEY_BYTES, EncryptionKeys

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "FORMAT_VERSION",
    "KEY_BYTES",
    "NONCE_BYTES",
    "EncryptionKeys",
    "SecretUnreadable",
    "decrypt",
    "encrypt",
    "key_id",
    "needs_reencryption",
]

FORMAT_VERSION = "v1"
NONCE_BYTES = 12
_TAG_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class SecretUnreadable(Exception):
    """A sealed secret does not open: unknown key, malformed, another owner's, or changed.

    The message is the same for every cause; ``reason`` says which, for logs only.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("the secret could not be decrypted")
        #: For logs only.
        self.reason = reason


def key_id(key: bytes) -> str:
    """Return a short public identifier of ``key`` (12 URL-safe characters) that does not reveal it."""
    digest = hmac.new(key, b"encryption-key-id", hashlib.sha256).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode("ascii")


def encrypt(keys: EncryptionKeys, plaintext: bytes, *, associated_data: bytes) -> str:
    """Seal ``plaintext`` under the current key and return it as ``v1.<key id>.<nonce>.<ciphertext>``.

    ``associated_data`` is not stored in the result, but the same bytes must be
    given to :func:`decrypt`: make it name the secret's owner and purpose.
    """
    header = f"{FORMAT_VERSION}.{key_id(keys.current)}"
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = _aesgcm(keys.current).encrypt(nonce, plaintext, _aad(header, associated_data))
    return f"{header}.{_b64encode(nonce)}.{_b64encode(sealed)}"


def decrypt(keys: EncryptionKeys, sealed: str, *, associated_data: bytes) -> bytes:
    """Open a value :func:`encrypt` sealed under the current or a previous key.

    :raises SecretUnreadable: the value is malformed, names a key not in
        ``keys``, or fails authentication (other associated data, such as
        another account's, or any change to the value); ``reason`` says which.
    """
    version, kid, nonce_text, ciphertext_text = _parts(sealed)
    key = next((key for key in (keys.current, *keys.previous) if key_id(key) == kid), None)
    if key is None:
        raise SecretUnreadable("unknown key id")
    nonce = _b64decode(nonce_text)
    ciphertext = _b64decode(ciphertext_text)
    if len(nonce) != NONCE_BYTES or len(ciphertext) < _TAG_BYTES:
        raise SecretUnreadable("malformed: wrong nonce or ciphertext length")
    from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - see _aesgcm

    try:
        return _aesgcm(key).decrypt(nonce, ciphertext, _aad(f"{version}.{kid}", associated_data))
    except InvalidTag:
        raise SecretUnreadable("authentication failed: other associated data, or changed") from None


def _aesgcm(key: bytes) -> AESGCM:
    """AES-256-GCM under ``key``; ``cryptography`` is imported on first use, out of cold start."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

    return AESGCM(key)


def needs_reencryption(keys: EncryptionKeys, sealed: str) -> bool:
    """Return whether ``sealed`` names a previous key (so it should be sealed again under the current one).

    Only the header is read: a value :func:`decrypt` would refuse for other
    reasons (malformed, unknown key) gives False, and decrypting stays the check.
    """
    try:
        _version, kid, _nonce, _ciphertext = _parts(sealed)
    except SecretUnreadable:
        return False
    current = key_id(keys.current)
    return kid != current and any(key_id(key) == kid for key in keys.previous)


def _aad(header: str, associated_data: bytes) -> bytes:
    # The header has a fixed length, so header + separator + data is unambiguous.
    return header.encode("ascii") + b"\x00" + associated_data


def _parts(sealed: str) -> tuple[str, str, str, str]:
    """Split a sealed value into version, key id, nonce and ciphertext (the last two still encoded).

    :raises SecretUnreadable: not four ASCII parts, or an unknown format version.
    """
    if not isinstance(sealed, str) or not sealed.isascii():
        raise SecretUnreadable("malformed: not an ASCII string")
    parts = sealed.split(".")
    if len(parts) != 4:
        raise SecretUnreadable("malformed: not four parts")
    version, kid, nonce, ciphertext = parts
    if version != FORMAT_VERSION:
        raise SecretUnreadable("malformed: unknown format version")
    return version, kid, nonce, ciphertext


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes:
    """Decode canonical unpadded URL-safe base64: any other spelling of the same bytes is refused.

    :raises SecretUnreadable: ``text`` is not exactly what :func:`_b64encode` makes.
    """
    if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise SecretUnreadable("malformed: not unpadded URL-safe base64")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SecretUnreadable("malformed: not base64") from None
    if _b64encode(data) != text:  # unused low bits set in the last character
        raise SecretUnreadable("malformed: not canonical base64")
    return data
