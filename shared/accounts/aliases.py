"""Alias rows: where the account of an imported Mobile Services user id lives.

Accounts imported from Mobile Services keep their user ids (``Custom:<id>``),
which carry no partition. For them an alias row (PartitionKey ``alias-`` + two
hex digits of SHA-256 of the user id, RowKey ``user:<user id>``) names the
account's partition; each store caches it, and looks again when the cached
partition no longer holds the account.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import UpdateMode

from shared.settings.storage import StorageSettings
from shared.storage.clients import storage_errors
from shared.storage.rows import Rows, alias_keys, partition_for_email, partition_for_user_id

__all__ = ["AliasRows"]

_ALIAS_CACHE_LIMIT = 100_000


class AliasRows(Rows):
    """Reads and writes of alias rows, with this store's cache of the partitions they name."""

    def __init__(self, settings: StorageSettings) -> None:
        super().__init__(settings)
        self._alias_partitions: dict[str, str] = {}

    def alias_row(self, user_id: str, email: str) -> dict[str, Any]:
        """The alias row of a legacy user id whose account has ``email``."""
        alias_partition, alias_row = alias_keys(user_id)
        return {
            "PartitionKey": alias_partition,
            "RowKey": alias_row,
            "UserId": user_id,
            "Email": email,
            "AccountPartition": partition_for_email(email),
        }

    def claim_alias(self, user_id: str, email: str) -> bool:
        """Create the alias row; ``False`` when it exists for another email."""
        alias = self.alias_row(user_id, email)
        with storage_errors("create alias"):
            try:
                self.table().create_entity(alias)
            except ResourceExistsError:
                existing = self.table().get_entity(alias["PartitionKey"], alias["RowKey"])
                return bool(existing.get("Email") == email)
        return True

    def legacy_partition(self, user_id: str, *, refresh: bool = False) -> str | None:
        """The partition the alias row of ``user_id`` names (cached per store; ``refresh``: read it)."""
        partition = None if refresh else self._alias_partitions.get(user_id)
        if partition is None:
            self._alias_partitions.pop(user_id, None)
            alias = self.get(*alias_keys(user_id), "read alias")
            if alias is None:
                return None
            partition = str(alias["AccountPartition"])
            if len(self._alias_partitions) >= _ALIAS_CACHE_LIMIT:
                self._alias_partitions.clear()
            self._alias_partitions[user_id] = partition
        return partition

    def delete_alias(self, user_id: str) -> None:
        """Remove the alias row of a legacy user id (no error when it is already gone)."""
        self._alias_partitions.pop(user_id, None)
        with storage_errors("delete alias"):
            self.table().delete_entity(*alias_keys(user_id))  # no error when it is already gone

    def point_alias(self, user_id: str, email: str) -> None:
        """Make the alias row of ``user_id`` name the partition of ``email`` (none is needed at home)."""
        partition = partition_for_email(email)
        self._alias_partitions.pop(user_id, None)
        if partition_for_user_id(user_id) == partition:
            with storage_errors("delete alias"):
                self.table().delete_entity(*alias_keys(user_id))
            return
        with storage_errors("write alias"):
            self.table().upsert_entity(self.alias_row(user_id, email), mode=UpdateMode.REPLACE)
