"""Passkey credentials in Table Storage: one row per credential, found by its credential id.

=================  ================================  ==================================================
PartitionKey       RowKey                            properties
=================  ================================  ==================================================
``passkey-`` + 2   ``passkey:`` + the passkey id     ``CredentialId``, ``UserId``, ``Name``,
hex digits         (base64url of SHA-256 of the      ``PublicKey`` (COSE, base64url), ``SignCount``,
                   credential id)                    ``Transports`` (JSON), ``Aaguid``,
                                                     ``BackupEligible``, ``BackedUp``, ``CreatedAt``,
                                                     ``LastUsedAt``
=================  ================================  ==================================================

A credential id may be up to 1,023 bytes of anything, which no Table key can
hold; its SHA-256 always can, and is the passkey's id in the API. Inserting
the row fails if the credential id is stored already, for any account, which
makes it unique across accounts without check-then-insert. The full id is kept
on the row and compared on every read.

The account row lists the account's credential ids (:mod:`~shared.passkeys.account_row`);
that list is what makes a credential the account's. Adding a passkey inserts
its row, then adds it to the list (guarded by the account row's ETag);
removing one deletes its row, then takes it off the list, so a request that
fails halfway is completed by repeating it. A sign-in writes the new sign
counter, the backup state and the time of use, guarded by the row's ETag.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient, UpdateMode

from shared.accounts.store import Account, partition_for_email, user_row_key
from shared.errors import ConflictError, PasskeyExists
from shared.passkeys.account_row import (
    CREDENTIALS_PROPERTY,
    USER_HANDLE_PROPERTY,
    b64url,
    credential_ids,
    from_b64url,
    is_passkey_id,
    passkey_id,
)
from shared.passkeys.providers import provider_name
from shared.settings import StorageSettings
from shared.storage import storage_errors, table_client

__all__ = ["PARTITION_PREFIX", "PasskeyStore", "StoredPasskey"]

PARTITION_PREFIX = "passkey-"
#: The longest credential id WebAuthn allows (credentialIdLength).
MAX_CREDENTIAL_ID_BYTES = 1023


@dataclass(frozen=True, slots=True)
class StoredPasskey:
    """One passkey: what verifying its next assertion needs, and what its owner sees of it."""

    credential_id: bytes
    user_id: str
    name: str
    public_key: bytes
    sign_count: int
    created_at: datetime
    aaguid: str = "00000000-0000-0000-0000-000000000000"
    transports: tuple[str, ...] = ()
    backup_eligible: bool = False
    backed_up: bool = False
    last_used_at: datetime | None = None
    etag: str | None = None

    @property
    def id(self) -> str:
        """The passkey's id in the API."""
        return passkey_id(self.credential_id)

    @property
    def provider(self) -> str | None:
        """The provider's name from the AAGUID, where known."""
        return provider_name(self.aaguid)


class PasskeyStore:
    """Reads and writes credential rows, and the passkey properties of account rows."""

    def __init__(self, storage: StorageSettings) -> None:
        self._storage = storage

    def create(self, passkey: StoredPasskey) -> StoredPasskey:
        """Insert the row of a new passkey.

        :raises PasskeyExists: the credential id is stored already (for this or another account).
        :raises StorageUnavailable: storage could not be reached.
        """
        with storage_errors("store passkey"):
            try:
                answer = self._table().create_entity(_row(passkey))
            except ResourceExistsError:
                raise PasskeyExists() from None
        return dataclasses.replace(passkey, etag=str(answer["etag"]))

    def get(self, credential_id: bytes) -> StoredPasskey | None:
        """The passkey of ``credential_id``, or ``None``: one point read."""
        return self._read(_keys(passkey_id(credential_id)), credential_id)

    def find(self, account: Account, passkey_id_: str) -> tuple[bytes, StoredPasskey | None] | None:
        """The credential id and row of the account's passkey named ``passkey_id_``.

        :returns: ``None`` if the account has no such passkey; a ``None`` row if its row is gone
            (a removal that stopped halfway).
        """
        if not is_passkey_id(passkey_id_):
            return None
        for credential_id in credential_ids(account):
            if passkey_id(credential_id) == passkey_id_:
                return credential_id, self._read(_keys(passkey_id_), credential_id)
        return None

    def list(self, account: Account) -> list[StoredPasskey]:
        """The account's passkeys, oldest first: a point read each (at most ``AUTH_MAX_PASSKEYS``)."""
        found = (self._read(_keys(passkey_id(c)), c) for c in credential_ids(account))
        return [passkey for passkey in found if passkey is not None and passkey.user_id == account.user_id]

    def record_use(
        self, passkey: StoredPasskey, *, sign_count: int, backed_up: bool, now: datetime
    ) -> StoredPasskey | None:
        """Store a sign-in's counter, backup state and time, if the row is unchanged since read.

        :returns: the passkey as written, or ``None`` if another request wrote the row first.
        """
        changes = {"SignCount": _counter(sign_count), "BackedUp": backed_up, "LastUsedAt": now}
        entity = _keys(passkey.id) | changes
        with storage_errors("record passkey use"):
            try:
                answer = self._table().update_entity(
                    entity, mode=UpdateMode.MERGE, etag=passkey.etag, match_condition=_IF_UNCHANGED
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return dataclasses.replace(
            passkey, sign_count=sign_count, backed_up=backed_up, last_used_at=now, etag=str(answer["etag"])
        )

    def rename(self, passkey: StoredPasskey, name: str) -> StoredPasskey:
        """Give the passkey a new name.

        :raises ConflictError: the row is gone (removed meanwhile).
        """
        with storage_errors("rename passkey"):
            try:
                answer = self._table().update_entity(
                    _keys(passkey.id) | {"Name": name}, mode=UpdateMode.MERGE
                )
            except ResourceNotFoundError:
                raise ConflictError() from None
        return dataclasses.replace(passkey, name=name, etag=str(answer["etag"]))

    def delete(self, credential_id: bytes) -> None:
        """Delete the row of ``credential_id`` (no error when it is gone already)."""
        keys = _keys(passkey_id(credential_id))
        with storage_errors("delete passkey"):
            self._table().delete_entity(keys["PartitionKey"], keys["RowKey"])

    def delete_all(self, account: Account) -> int:
        """Delete the rows of every passkey of ``account`` (after the account itself was deleted).

        :returns: how many it listed.
        """
        listed = credential_ids(account)
        for credential_id in listed:
            self.delete(credential_id)
        return len(listed)

    # The account row's properties (see shared.passkeys.account_row).

    def set_user_handle(self, account: Account, handle: bytes) -> None:
        """Give the account its user handle, if its row is unchanged since read.

        :raises ConflictError: the row changed (or went) since read; read it again.
        """
        self._update_account(account, {USER_HANDLE_PROPERTY: b64url(handle)}, "store user handle")

    def list_on_account(self, account: Account, ids: tuple[bytes, ...]) -> None:
        """Make ``ids`` the account's credential ids, if its row is unchanged since read.

        :raises ConflictError: the row changed (or went) since read; read it again.
        """
        listed = json.dumps([b64url(credential_id) for credential_id in ids])
        self._update_account(account, {CREDENTIALS_PROPERTY: listed}, "list passkeys")

    def _update_account(self, account: Account, changes: dict[str, Any], operation: str) -> None:
        row = {"PartitionKey": partition_for_email(account.email), "RowKey": user_row_key(account.user_id)}
        with storage_errors(operation):
            try:
                self._table().update_entity(
                    row | changes, mode=UpdateMode.MERGE, etag=account.etag, match_condition=_IF_UNCHANGED
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConflictError() from None

    def _read(self, keys: dict[str, str], credential_id: bytes) -> StoredPasskey | None:
        with storage_errors("read passkey"):
            try:
                entity = self._table().get_entity(keys["PartitionKey"], keys["RowKey"])
            except ResourceNotFoundError:
                return None
        if entity.get("CredentialId") != b64url(credential_id):
            return None  # a digest collision: SHA-256 has none known, but the full id decides
        return _passkey(entity)

    def _table(self) -> TableClient:
        return table_client(self._storage)


_IF_UNCHANGED = MatchConditions.IfNotModified


def _keys(passkey_id_: str) -> dict[str, str]:
    digest = from_b64url(passkey_id_)
    return {"PartitionKey": f"{PARTITION_PREFIX}{digest[0]:02x}", "RowKey": "passkey:" + passkey_id_}


def _row(passkey: StoredPasskey) -> dict[str, Any]:
    row: dict[str, Any] = _keys(passkey.id) | {
        "CredentialId": b64url(passkey.credential_id),
        "UserId": passkey.user_id,
        "Name": passkey.name,
        "PublicKey": b64url(passkey.public_key),
        "SignCount": _counter(passkey.sign_count),
        "Transports": json.dumps(list(passkey.transports)),
        "Aaguid": passkey.aaguid,
        "BackupEligible": passkey.backup_eligible,
        "BackedUp": passkey.backed_up,
        "CreatedAt": passkey.created_at,
    }
    if passkey.last_used_at is not None:
        row["LastUsedAt"] = passkey.last_used_at
    return row


def _passkey(entity: Any) -> StoredPasskey:
    return StoredPasskey(
        credential_id=from_b64url(str(entity["CredentialId"])),
        user_id=str(entity["UserId"]),
        name=str(entity.get("Name") or ""),
        public_key=from_b64url(str(entity["PublicKey"])),
        sign_count=_integer(entity.get("SignCount")),
        created_at=entity["CreatedAt"],
        aaguid=str(entity.get("Aaguid") or "00000000-0000-0000-0000-000000000000"),
        transports=tuple(str(t) for t in json.loads(entity.get("Transports") or "[]")),
        backup_eligible=bool(entity.get("BackupEligible", False)),
        backed_up=bool(entity.get("BackedUp", False)),
        last_used_at=entity.get("LastUsedAt"),
        etag=entity.metadata["etag"],
    )


def _counter(value: int) -> EntityProperty:
    """A sign counter (an unsigned 32-bit number) as Int64: the SDK would store an int as Int32."""
    return EntityProperty(value, EdmType.INT64)


def _integer(value: Any) -> int:
    return int(value.value if isinstance(value, EntityProperty) else (value or 0))
