"""Recovery codes: one-time lookup secrets that stand in for the authenticator app, stored as keyed digests.

Each code is 24 characters drawn with :mod:`secrets` from the 32 symbols
``0123456789abcdefghjkmnpqrstvwxyz`` (Crockford's base32 alphabet in lower
case: no ``i``, ``l``, ``o`` or ``u``, which look like ``1``, ``1``, ``0`` and
``v``), so 24 x 5 = 120 random bits, shown in groups of four for reading:
``xxxx-xxxx-xxxx-xxxx-xxxx-xxxx``.

Why 120 bits: OWASP ASVS 5.0 requirement 6.5.2 lets lookup secrets of at
least 112 bits of entropy be stored with a standard hash function; below that
they would need an approved password hash with a 32-bit random salt (as
passwords get, at a cost of tens of milliseconds per code and per try). At
120 bits no guessing, online or offline, is feasible, so the stored form is a
fast HMAC-SHA256 of the code bound to the account's user id
(:func:`digest`), under a key derived from the app's encryption key
(:func:`recovery_code_key`): a copy of the table alone cannot test guesses,
and a digest copied to another account matches nothing there.

Typing is forgiving: case, spaces and hyphens do not matter, and the
look-alikes ``o``, ``i``, ``l`` and ``u`` read as ``0``, ``1``, ``1`` and ``v``
(:func:`normalize`). A code works once: the caller removes the digest
:func:`find` matched in the same write that accepts the sign-in
(ASVS 6.5.1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "ENTROPY_BITS",
    "GROUP_LENGTH",
    "RECOVERY_CODE_COUNT",
    "digest",
    "find",
    "new_recovery_codes",
    "normalize",
    "recovery_code_key",
]

#: Crockford's base32 symbols, lower case.
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
CODE_LENGTH = 24
GROUP_LENGTH = 4
#: Random bits per code: log2(32) x 24 = 120, at least the 112 ASVS 6.5.2 asks for a plain keyed hash.
ENTROPY_BITS = 5 * CODE_LENGTH
RECOVERY_CODE_COUNT = 10
#: Longer input is refused unread (a code with a separator between every character is 47 long).
_MAX_INPUT_LENGTH = 100
_LOOK_ALIKES = str.maketrans({"o": "0", "i": "1", "l": "1", "u": "v"})
_SYMBOLS = frozenset(ALPHABET)


def new_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    """Return ``count`` distinct new codes, each shown as ``xxxx-xxxx-xxxx-xxxx-xxxx-xxxx``.

    :raises ValueError: ``count`` is less than 1.
    """
    if count < 1:
        raise ValueError("at least one recovery code is required")
    codes: dict[str, None] = {}  # a dict keeps the order; a repeat (p ~ 2**-113) is just drawn again
    while len(codes) < count:
        raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        codes[_grouped(raw)] = None
    return list(codes)


def normalize(code: str) -> str | None:
    """Return the 24 symbols ``code`` stands for, or None if it is not a recovery code.

    Lower case; spaces (any whitespace) and hyphens dropped; ``o`` read as
    ``0``, ``i`` and ``l`` as ``1``, ``u`` as ``v``. Non-ASCII input is refused
    (so that no Unicode case mapping can turn it into a symbol).
    """
    if len(code) > _MAX_INPUT_LENGTH or not code.isascii():
        return None
    candidate = "".join(code.lower().split()).replace("-", "").translate(_LOOK_ALIKES)
    if len(candidate) != CODE_LENGTH or not _SYMBOLS.issuperset(candidate):
        return None
    return candidate


def recovery_code_key(encryption_key: bytes) -> bytes:
    """Derive the key of recovery-code digests from an encryption key (HKDF-SHA256, info ``recovery codes``).

    The digests of codes made under one key match only under the same key:
    after an encryption-key rotation, check with the keys of the previous
    keys too, or issue new codes.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"recovery codes")
    return hkdf.derive(encryption_key)


def digest(key: bytes, user_id: str, code: str) -> str:
    """Return the stored form of ``code`` for ``user_id``: HMAC-SHA256 (hex) of the normalized code.

    :raises ValueError: ``code`` is not a recovery code (see :func:`normalize`).
    """
    normalized = normalize(code)
    if normalized is None:
        raise ValueError("not a recovery code")
    return _digest(key, user_id, normalized)


def find(key: bytes, user_id: str, code: str, stored_digests: Sequence[str]) -> int | None:
    """Return the index in ``stored_digests`` of the digest ``code`` matches, or None.

    None also for a malformed code (without computing anything). Otherwise
    every stored digest is compared, in constant time, whatever matched, so
    the time taken does not tell which code, if any, was given. A used code's
    digest should be removed (or replaced by ``""``, which matches nothing).
    """
    normalized = normalize(code)
    if normalized is None:
        return None
    expected = _digest(key, user_id, normalized).encode("ascii")
    found: int | None = None
    for index, stored in enumerate(stored_digests):
        matched = hmac.compare_digest(expected, stored.encode("utf-8"))
        if matched and found is None:
            found = index
    return found


def _digest(key: bytes, user_id: str, normalized: str) -> str:
    # The code is last and of fixed length without a NUL, so the message is unambiguous.
    message = user_id.encode("utf-8") + b"\x00" + normalized.encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _grouped(raw: str) -> str:
    return "-".join(raw[start : start + GROUP_LENGTH] for start in range(0, CODE_LENGTH, GROUP_LENGTH))
