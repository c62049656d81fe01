"""The importer's reads and writes: accounts from Mobile Services, keeping their user ids.

One account at a time (:meth:`ImportRows.import_legacy`, safe to repeat), or a
handful of requests per partition instead of several per account (the bulk
methods ``tools.import_accounts`` runs).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from azure.data.tables import UpdateMode

from shared.accounts.aliases import AliasRows
from shared.accounts.mobile_services import is_legacy_hash
from shared.accounts.rows import account_rows, create_or_claim
from shared.errors import ConflictError
from shared.storage.clients import storage_errors
from shared.storage.rows import email_row_key, partition_for_email

__all__ = ["ImportOutcome", "ImportRows"]


class ImportOutcome(Enum):
    """What importing one legacy account did."""

    IMPORTED = "imported"
    ALREADY_IMPORTED = "already imported"
    EMAIL_TAKEN = "email has another account"
    USER_ID_TAKEN = "user id was imported with another email"


class ImportRows(AliasRows):
    """Writes of imported accounts and their aliases; reads of what is there already."""

    def import_legacy(
        self,
        user_id: str,
        email: str,
        stored_hash: str,
        created_at: datetime,
        *,
        email_verified: bool = False,
    ) -> ImportOutcome:
        """Store an account imported from Mobile Services, keeping its user id; never overwrite.

        Safe to repeat: an account already imported, or one that registered or
        changed since, is left exactly as it is.

        :raises StorageUnavailable: storage could not be reached (repeat later).
        """
        if not self.claim_alias(user_id, email):
            return ImportOutcome.USER_ID_TAKEN
        login_row, account_row = account_rows(
            user_id, email, stored_hash, created_at, email_verified=email_verified
        )
        if create_or_claim(self, login_row, account_row, "import account") is not None:
            return ImportOutcome.IMPORTED
        existing = self.get(partition_for_email(email), email_row_key(email), "read credentials")
        if existing is not None and existing.get("UserId") == user_id:
            return ImportOutcome.ALREADY_IMPORTED
        self.delete_alias(user_id)
        return ImportOutcome.EMAIL_TAKEN

    def existing_logins(self, partition: str) -> dict[str, str]:
        """Map each login row of ``partition`` (by normalized email) to its user id."""
        query = f"PartitionKey eq '{partition}' and RowKey ge 'email:' and RowKey lt 'email;'"
        with storage_errors("list logins"):
            return {
                str(entity["Email"]): str(entity["UserId"])
                for entity in self.table().query_entities(query, select=["Email", "UserId"])
                if entity.get("UserId")  # not a placeholder holding only a failure record
            }

    def existing_aliases(self, alias_partition: str) -> dict[str, str]:
        """Map each legacy user id with an alias in ``alias_partition`` to the email it was imported with."""
        query = f"PartitionKey eq '{alias_partition}'"
        with storage_errors("list aliases"):
            return {
                str(entity["UserId"]): str(entity["Email"])
                for entity in self.table().query_entities(query, select=["UserId", "Email"])
            }

    def put_aliases(self, aliases: list[tuple[str, str]]) -> None:
        """Write alias rows (legacy user id, email), all of one alias partition, in one transaction."""
        operations = [
            ("upsert", self.alias_row(user_id, email), {"mode": UpdateMode.REPLACE})
            for user_id, email in aliases
        ]
        self.transact(operations, "write aliases")

    def create_imported(
        self, accounts: list[tuple[str, str, str, datetime]], *, email_verified: bool = False
    ) -> bool:
        """Create legacy accounts (user id, email, stored hash, created), all of one partition, atomically.

        :returns: ``False`` if any of their rows exists (nothing was written).
        """
        operations = []
        for user_id, email, stored_hash, created_at in accounts:
            login_row, account_row = account_rows(
                user_id, email, stored_hash, created_at, email_verified=email_verified
            )
            operations += [("create", login_row), ("create", account_row)]
        try:
            self.transact(operations, "import accounts")
        except ConflictError:
            return False
        return True

    def hash_statistics(self) -> tuple[int, int]:
        """Count accounts, and those still holding an imported Mobile Services hash.

        Reads every login row: an administrative query, never on a request path.
        """
        query = "RowKey ge 'email:' and RowKey lt 'email;'"
        total = legacy = 0
        with storage_errors("count hashes"):
            for entity in self.table().query_entities(query, select=["PasswordHash"]):
                if entity.get("PasswordHash"):  # not a placeholder holding only a failure record
                    total += 1
                    legacy += is_legacy_hash(str(entity["PasswordHash"]))
        return total, legacy
