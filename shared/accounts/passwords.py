"""Password policy and Argon2id hashing (through argon2-cffi).

Passwords are NFKC-normalized before they are measured or hashed (NIST SP
800-63B), so the same password typed on different keyboards hashes the same.
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
import threading
import unicodedata
from enum import Enum

import argon2
from argon2.exceptions import InvalidHashError, VerificationError

from shared.accounts.mobile_services import is_legacy_hash, verify_legacy_password
from shared.errors import WeakPassword
from shared.settings.passwords import OWASP_MINIMUMS, Argon2Parameters, PasswordPolicy

__all__ = [
    "OWASP_MINIMUMS",
    "Argon2Parameters",
    "PasswordHasher",
    "PasswordPolicy",
    "Verification",
    "check_password_policy",
    "is_common_password",
    "normalize_password",
    "password_length",
]

#: Context words shorter than this are too common inside other words to refuse.
MIN_CONTEXT_WORD_LENGTH = 3


class Verification(Enum):
    """Outcome of checking a password against a stored hash."""

    WRONG = "wrong"
    OK = "ok"
    OK_NEEDS_REHASH = "ok_needs_rehash"

    @property
    def ok(self) -> bool:
        """Whether the password was right."""
        return self is not Verification.WRONG


def normalize_password(password: str) -> str:
    """Return the NFKC form of ``password``, the form that is measured and hashed."""
    return unicodedata.normalize("NFKC", password)


def password_length(password: str) -> int:
    """Return the length the policy measures: code points of the NFKC form."""
    return len(normalize_password(password))


def check_password_policy(policy: PasswordPolicy, password: str, *, email: str | None = None) -> None:
    """Refuse a password that is too short, too long, commonly used, or built on a context word.

    There are deliberately no composition rules (NIST SP 800-63B).

    :param email: the account's normalized email; its local part counts as a context word.
    :raises WeakPassword: with the rule that was broken as its detail.
    """
    length = password_length(password)
    if length < policy.min_length:
        raise WeakPassword(f"The password must have at least {policy.min_length} characters.")
    if length > policy.max_length:
        raise WeakPassword(f"The password must have at most {policy.max_length} characters.")
    if is_common_password(password):
        raise WeakPassword("The password is on a list of commonly used passwords.")
    words = [*policy.context_words, email.partition("@")[0] if email else ""]
    folded = normalize_password(password).casefold()
    if any(len(word) >= MIN_CONTEXT_WORD_LENGTH and word.casefold() in folded for word in words):
        raise WeakPassword("The password contains the name of this service or part of your email address.")


def is_common_password(password: str) -> bool:
    """Whether ``password`` (case-insensitively) is on the 30,000-entry list zxcvbn ships."""
    return normalize_password(password).casefold() in _common_passwords()


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Imported on first use: the list is large and stays out of cold-start import time.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # noqa: PLC0415

    return frozenset(entry.casefold() for entry in FREQUENCY_LISTS["passwords"])


#: Argon2 computations allowed to run at once in this process. More than there
#: are cores only time-slices them, thrashing the caches, so fewer finish per
#: second (measured: 0.86 of the two-core limit with four at once, 0.93 with two).
#: The cores counted are those this process may run on, not the machine's.
HASHING_SLOTS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_hashing_slots = threading.BoundedSemaphore(HASHING_SLOTS)


class PasswordHasher:
    """Hashes and verifies passwords as Argon2id PHC strings with fixed parameters.

    At most :data:`HASHING_SLOTS` hashes or verifications run at a time per
    process; further callers wait their turn (argon2-cffi releases the GIL, so
    the ones running use every core).
    """

    def __init__(self, parameters: Argon2Parameters) -> None:
        self.parameters = parameters
        self._hasher = argon2.PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            hash_len=32,
            salt_len=16,
            type=argon2.Type.ID,
        )
        self._dummy_hash = _unmatchable_hash(parameters)

    def hash(self, password: str) -> str:
        """Return the Argon2id PHC string of ``password`` with a fresh random salt."""
        normalized = normalize_password(password)
        with _hashing_slots:
            return self._hasher.hash(normalized)

    def verify(self, stored_hash: str, password: str) -> Verification:
        """Check ``password`` against ``stored_hash`` in constant time.

        A hash that is not a valid Argon2 PHC string counts as a wrong password.
        ``OK_NEEDS_REHASH`` means the password is right but the hash was made
        with other parameters than the current ones, or is an imported Mobile
        Services hash. Those are checked as the Mobile Services script did (the
        password not normalized), then padded with one Argon2id verification,
        so that a legacy account takes as long to check as any other.
        """
        if is_legacy_hash(stored_hash):
            matched = verify_legacy_password(stored_hash, password)
            self.verify_nothing(password)
            return Verification.OK_NEEDS_REHASH if matched else Verification.WRONG
        normalized = normalize_password(password)
        try:
            with _hashing_slots:
                self._hasher.verify(stored_hash, normalized)
        except (VerificationError, InvalidHashError):
            return Verification.WRONG
        if self._hasher.check_needs_rehash(stored_hash):
            return Verification.OK_NEEDS_REHASH
        return Verification.OK

    def verify_nothing(self, password: str) -> None:
        """Spend the time of one verification against a hash that matches nothing.

        Called when an account does not exist, so that "unknown email" costs as
        much as "wrong password" and the two cannot be told apart by timing.
        """
        self.verify(self._dummy_hash, password)


def _unmatchable_hash(parameters: Argon2Parameters) -> str:
    """A well-formed Argon2id PHC string with the given costs and random salt and digest.

    Verifying against it costs exactly one real verification, yet no password
    matches it; building it costs nothing.
    """

    def encode(size: int) -> str:
        return base64.b64encode(secrets.token_bytes(size)).decode("ascii").rstrip("=")

    return (
        f"$argon2id$v=19$m={parameters.memory_kib},t={parameters.time_cost},p={parameters.parallelism}"
        f"${encode(16)}${encode(32)}"
    )
