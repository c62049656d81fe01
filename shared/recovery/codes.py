"""One-time codes mailed to prove an address: issued, stored as keyed HMACs, checked once.

A code is 8 random digits. Only its HMAC is stored, under a key derived from
the signing key (HKDF), bound to the code's purpose, the account's user id and
the address it was sent to, so a copy of the table alone cannot test guesses
and a code works only for what it was sent for. Each (email, purpose) has at
most one code: a newer one replaces the row. A code works once (the change it
allows deletes its row in the same transaction, guarded by the row's ETag),
until it expires, and until its ``MAX_WRONG_TRIES``-th wrong guess.

================================  ======================================================================
RowKey (partition of the email)   properties
================================  ======================================================================
``code:<purpose>:<email>``        ``UserId``, ``Address``, ``Digest``, ``IssuedAt``, ``ExpiresAt``,
                                  ``WrongTries``
================================  ======================================================================

The email in the key is the account's email when the code was issued (for an
email change: the current one, while ``Address`` is the new one).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import InvalidCode
from shared.events import log_event
from shared.settings import StorageSettings
from shared.storage import storage_errors, table_client
from shared.storage.rows import Operation, email_row_key, encode_key, partition_for_email

__all__ = ["CODE_DIGITS", "MAX_WRONG_TRIES", "CodePurpose", "OneTimeCodes", "StoredCode"]

CODE_DIGITS = 8
MAX_WRONG_TRIES = 5
_MAX_COUNT_ATTEMPTS = 10


class CodePurpose(StrEnum):
    """What a code allows; a code of one purpose never works for another."""

    RESET = "reset"
    VERIFY = "verify"
    EMAIL_CHANGE = "email-change"


@dataclass(frozen=True, slots=True)
class StoredCode:
    """A code row as read."""

    email: str
    purpose: CodePurpose
    user_id: str
    address: str
    digest: str
    expires_at: datetime
    wrong_tries: int
    etag: str

    def use(self) -> Operation:
        """The transaction operation that uses the code up: delete its row if unchanged since read."""
        keys = {"PartitionKey": partition_for_email(self.email), "RowKey": _row_key(self.purpose, self.email)}
        return ("delete", keys, {"etag": self.etag, "match_condition": MatchConditions.IfNotModified})


class OneTimeCodes:
    """Issues and checks the codes of one app (its storage, signing keys and code lifetime)."""

    def __init__(
        self, storage: StorageSettings, signing_keys: tuple[bytes, ...], lifetime: timedelta
    ) -> None:
        self._storage = storage
        self._signing_keys = signing_keys
        self._lifetime = lifetime

    @functools.cached_property
    def _keys(self) -> tuple[bytes, ...]:
        """The first key issues; all of them check (a signing-key rotation keeps fresh codes working)."""
        return tuple(_code_key(key) for key in self._signing_keys)

    def issue(self, email: str, purpose: CodePurpose, *, user_id: str, address: str) -> str:
        """Store a new code for ``email`` and ``purpose`` (replacing any earlier one) and return it.

        :raises StorageUnavailable: storage could not be reached.
        """
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        now = datetime.now(UTC).replace(microsecond=0)
        entity = {
            "PartitionKey": partition_for_email(email),
            "RowKey": _row_key(purpose, email),
            "UserId": user_id,
            "Address": address,
            "Digest": _digest(self._keys[0], purpose, user_id, address, code),
            "IssuedAt": now,
            "ExpiresAt": now + self._lifetime,
            "WrongTries": 0,
        }
        with storage_errors("issue code"):
            self._table().upsert_entity(entity, mode=UpdateMode.REPLACE)
        return code

    def stand_in_code(self, purpose: CodePurpose, address: str) -> str:
        """A code drawn and digested as :meth:`issue` does, but stored nowhere (the work, not the code)."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        _digest(self._keys[0], purpose, "", address, code)
        return code

    def read(self, email: str, purpose: CodePurpose) -> StoredCode | None:
        """Return the code row of ``email`` and ``purpose``, or ``None``: one point read."""
        with storage_errors("read code"):
            try:
                entity = self._table().get_entity(partition_for_email(email), _row_key(purpose, email))
            except ResourceNotFoundError:
                return None
        return _stored(email, purpose, entity)

    def check(self, stored: StoredCode | None, code: str, *, user_id: str | None, address: str) -> StoredCode:
        """Return ``stored`` if ``code`` is its right, live code for this account and address.

        Otherwise count a wrong try against it and refuse. The work is the
        same whether or not there is a code row (a conditional write either
        way), so the time taken does not tell whether an email has an account.

        :raises InvalidCode: ``reason`` says why (for logs only).
        :raises StorageUnavailable: storage could not be reached.
        """
        reason = self._refusal(stored, code, user_id=user_id, address=address)
        if reason is None and stored is not None:
            return stored
        self._count_wrong_try(stored)
        log_event("code_rejected", logging.WARNING, reason=reason, purpose=stored.purpose if stored else None)
        raise InvalidCode(reason or "no code")

    def _refusal(
        self, stored: StoredCode | None, code: str, *, user_id: str | None, address: str
    ) -> str | None:
        if stored is None or user_id is None:
            return "no_code"
        if stored.wrong_tries >= MAX_WRONG_TRIES:
            return "too_many_tries"
        if stored.expires_at <= datetime.now(UTC):
            return "expired"
        candidate = code.strip().replace(" ", "").replace("-", "")
        if len(candidate) != CODE_DIGITS or not candidate.isascii() or not candidate.isdigit():
            return "malformed"
        matches = False
        for key in self._keys:  # every key, so the time taken does not depend on which matched
            expected = _digest(key, stored.purpose, user_id, address, candidate)
            matches |= hmac.compare_digest(expected, stored.digest)
        if not matches:
            return "wrong_code"
        return None if stored.user_id == user_id and stored.address == address else "other_account"

    def _count_wrong_try(self, stored: StoredCode | None) -> None:
        """Add one wrong try to the row, without losing a concurrent one (ETag-guarded, re-read on a race)."""
        with storage_errors("count wrong code"):
            for _ in range(_MAX_COUNT_ATTEMPTS):
                if stored is None:
                    # No code: a write that fails just the same, so no code costs what a code costs.
                    keys = {"PartitionKey": "code-none", "RowKey": "code:none", "WrongTries": 1}
                    with contextlib.suppress(ResourceNotFoundError):
                        self._table().update_entity(keys, mode=UpdateMode.MERGE)
                    return
                entity = {
                    "PartitionKey": partition_for_email(stored.email),
                    "RowKey": _row_key(stored.purpose, stored.email),
                    "WrongTries": stored.wrong_tries + 1,
                }
                try:
                    self._table().update_entity(
                        entity,
                        mode=UpdateMode.MERGE,
                        etag=stored.etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except ResourceNotFoundError:
                    return  # used or replaced meanwhile
                except ResourceModifiedError:
                    stored = self.read(stored.email, stored.purpose)

    def _table(self) -> TableClient:
        return table_client(self._storage)


def _row_key(purpose: CodePurpose, email: str) -> str:
    # The same length bound as the login row's key.
    return f"code:{purpose}:" + email_row_key(email).removeprefix("email:")


def _code_key(signing_key: bytes) -> bytes:
    """A key for code digests only, derived from a signing key (HKDF-SHA256)."""
    # Imported on first use, out of every function's cold start.
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"one-time codes").derive(signing_key)


def _digest(key: bytes, purpose: CodePurpose, user_id: str, address: str, code: str) -> str:
    message = "\x00".join((purpose, encode_key(user_id), address, code)).encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _stored(email: str, purpose: CodePurpose, entity: Any) -> StoredCode:
    return StoredCode(
        email=email,
        purpose=purpose,
        user_id=str(entity["UserId"]),
        address=str(entity["Address"]),
        digest=str(entity["Digest"]),
        expires_at=entity["ExpiresAt"],
        wrong_tries=int(entity.get("WrongTries", 0)),
        etag=str(entity.metadata["etag"]),
    )
