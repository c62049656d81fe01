"""The rows of the accounts table: keys and partitions, ETag-guarded writes, transactions.

Every concern keeps its rows in one Table Storage table (the accounts table),
and every concern's store (``shared/<concern>/store.py``) is built on what is
here: the key of each kind of row, the partition an email or a user id lives
in, and the three ways to write (a guarded create-or-merge, an entity-group
transaction that is all or nothing, a point read).

============  ==================================  =================================================
row           PartitionKey / RowKey               owner
============  ==================================  =================================================
login row     ``acct-<xx>`` / ``email:<email>``   :mod:`shared.accounts.store` (failure record:
                                                  :mod:`shared.throttling.store`)
account row   ``acct-<xx>`` / ``user:<user id>``  :mod:`shared.accounts.store` (sessions:
                                                  :mod:`shared.sessions.store`)
second factor ``acct-<xx>`` / ``mfa:<user id>``   :mod:`shared.mfa.store`
codes         ``acct-<xx>`` / ``code:...``        :mod:`shared.recovery.codes`
alias         ``alias-<xx>`` / ``user:<user id>`` :mod:`shared.accounts.aliases`
============  ==================================  =================================================

``<xx>`` is two hex digits of SHA-256 of the normalized email (of the legacy
user id for an alias), so all rows of an account share one partition and can
change together in one transaction. The keys of every kind of row are here,
not with their owners, because more than one concern writes beside them (an
account's deletion and its email's move take its second factor and codes along).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.errors import ConflictError, InvalidRequest
from shared.settings.storage import StorageSettings
from shared.storage.clients import storage_errors, table_client

__all__ = [
    "LEGACY_USER_ID_PREFIX",
    "NEVER",
    "USER_ID_PREFIX",
    "Operation",
    "Rows",
    "alias_keys",
    "decode_key",
    "email_row_key",
    "encode_key",
    "instant",
    "mfa_row_key",
    "new_user_id",
    "partition_for_email",
    "partition_for_user_id",
    "unchanged",
    "user_row_key",
]

#: One operation of an entity-group transaction, as azure-data-tables takes it.
Operation = tuple[Any, ...]

USER_ID_PREFIX = "custom:"
LEGACY_USER_ID_PREFIX = "Custom:"
_PARTITION_PREFIX = "acct-"
_ALIAS_PARTITION_PREFIX = "alias-"
_SHARD_DIGITS = 2
_USER_ID_LENGTH = len(USER_ID_PREFIX) + _SHARD_DIGITS + 22
_MAX_KEY_LENGTH = 512
# Characters Table Storage forbids in keys, plus "%" so that encoding is reversible.
_KEY_UNSAFE = frozenset("%/\\#?") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}

#: Stored for "no such instant": a merge cannot remove a property, so a lock is cleared by this.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def encode_key(value: str) -> str:
    """Percent-encode the characters Table Storage forbids in PartitionKey and RowKey."""
    return "".join(f"%{ord(char):02X}" if char in _KEY_UNSAFE else char for char in value)


def decode_key(value: str) -> str:
    """Undo :func:`encode_key`."""
    return re.sub(r"%([0-9A-F]{2})", lambda match: chr(int(match[1], 16)), value)


def partition_for_email(email: str) -> str:
    """Return the partition holding the account of a normalized email."""
    return _PARTITION_PREFIX + hashlib.sha256(email.encode("utf-8")).hexdigest()[:_SHARD_DIGITS]


def partition_for_user_id(user_id: str) -> str | None:
    """Return the partition of a user id, or ``None`` when it is not one of ours."""
    shard = user_id[len(USER_ID_PREFIX) : len(USER_ID_PREFIX) + _SHARD_DIGITS]
    if not user_id.startswith(USER_ID_PREFIX) or len(user_id) != _USER_ID_LENGTH:
        return None
    if any(char not in "0123456789abcdef" for char in shard):
        return None
    return _PARTITION_PREFIX + shard


def new_user_id(email: str) -> str:
    """Return a fresh, random, URL-safe user id whose partition matches ``email``'s."""
    return USER_ID_PREFIX + partition_for_email(email)[len(_PARTITION_PREFIX) :] + secrets.token_urlsafe(16)


def email_row_key(email: str) -> str:
    """Return the RowKey of the login row of a normalized email.

    :raises InvalidRequest: the encoded email is longer than a key may be.
    """
    row_key = "email:" + encode_key(email)
    if len(row_key) > _MAX_KEY_LENGTH:
        raise InvalidRequest("The email address is too long.")
    return row_key


def user_row_key(user_id: str) -> str:
    """Return the RowKey of the account row of ``user_id``."""
    return "user:" + encode_key(user_id)


def mfa_row_key(user_id: str) -> str:
    """Return the RowKey of the second-factor row of ``user_id``."""
    return "mfa:" + encode_key(user_id)


def alias_keys(user_id: str) -> tuple[str, str]:
    """Return the PartitionKey and RowKey of a legacy user id's alias row."""
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:_SHARD_DIGITS]
    return _ALIAS_PARTITION_PREFIX + digest, user_row_key(user_id)


def instant(value: datetime | None) -> datetime | None:
    """A stored instant, or ``None`` for :data:`NEVER` (and anything before it)."""
    return None if value is None or value <= NEVER else value


def unchanged(etag: str) -> dict[str, Any]:
    """The condition of a write that must fail if the row changed since it was read (If-Match)."""
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}


class Rows:
    """Reads and writes of the accounts table's rows, for the stores of every concern."""

    def __init__(self, settings: StorageSettings) -> None:
        self._settings = settings

    def table(self) -> TableClient:
        """This process's client for the table (:func:`shared.storage.clients.table_client`)."""
        return table_client(self._settings)

    def get(self, partition: str, row_key: str, operation: str) -> Any:
        """One point read: the entity, or ``None`` if there is none.

        :raises StorageUnavailable: storage could not be reached.
        """
        with storage_errors(operation):
            try:
                return self.table().get_entity(partition, row_key)
            except ResourceNotFoundError:
                return None

    def write_if_unchanged(self, entity: dict[str, Any], etag: str | None, operation: str) -> bool:
        """Create ``entity`` (no ``etag``: it must not exist) or merge it into the row read with ``etag``.

        :returns: ``False`` when another request wrote the row first (nothing written).
        """
        with storage_errors(operation):
            try:
                if etag is None:
                    self.table().create_entity(entity)
                else:
                    self.table().update_entity(entity, mode=UpdateMode.MERGE, **unchanged(etag))
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    def transact(self, operations: list[Any], operation: str) -> None:
        """Submit an entity-group transaction: all of ``operations`` or nothing.

        :raises ConflictError: a row was gone, existed, or changed since read (nothing written).
        """
        with storage_errors(operation):
            try:
                self.table().submit_transaction(operations)
            except TableTransactionError as error:
                if error.status_code in (404, 409, 412):  # gone, exists, changed: all a conflict
                    raise ConflictError() from None
                raise
