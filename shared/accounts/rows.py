"""The two rows of an account, and how a new account takes its email.

An account is two entities in one partition, written and deleted together in
one entity-group transaction:

============  =========================  ============================================================
entity        RowKey                     properties
============  =========================  ============================================================
login row     ``email:<encoded email>``  ``UserId``, ``Email``, ``PasswordHash``, ``SessionVersion``,
                                         ``EmailVerified``
account row   ``user:<user id>``         ``Email``, ``CreatedAt``, ``SessionVersion``, ``EmailVerified``
============  =========================  ============================================================

Inserting the login row fails when the email exists, which makes uniqueness
atomic without check-then-insert; a placeholder login row (holding only a
failure record, :mod:`shared.throttling.store`) is claimed with an ETag-guarded
transaction. Registration, import and an email's move all create accounts this way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from azure.core.exceptions import ServiceResponseError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.errors import ConflictError, StorageUnavailable
from shared.storage.clients import storage_errors
from shared.storage.rows import Rows, email_row_key, partition_for_email, unchanged, user_row_key

__all__ = ["account_rows", "create_or_claim"]


def account_rows(
    user_id: str, email: str, password_hash: str, created_at: datetime, *, email_verified: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two entities of a new account (the schema above): its login row and its account row."""
    partition = partition_for_email(email)
    login_row = {
        "PartitionKey": partition,
        "RowKey": email_row_key(email),
        "UserId": user_id,
        "Email": email,
        "PasswordHash": password_hash,
        "SessionVersion": 0,
        "EmailVerified": email_verified,
    }
    account_row = {
        "PartitionKey": partition,
        "RowKey": user_row_key(user_id),
        "Email": email,
        "CreatedAt": created_at,
        "SessionVersion": 0,
        "EmailVerified": email_verified,
    }
    return login_row, account_row


def create_or_claim(
    rows: Rows,
    login_row: dict[str, Any],
    account_row: dict[str, Any],
    operation: str,
    extra_rows: list[dict[str, Any]] | None = None,
) -> list[Mapping[str, Any]] | None:
    """Insert both rows of a new account, taking over a placeholder login row if one exists.

    :returns: the transaction's results, or ``None`` if the email has an account.
    """
    with storage_errors(operation):
        answer_lost = False
        try:
            return rows.table().submit_transaction(
                [
                    ("create", login_row),
                    ("create", account_row),
                    *(("create", r) for r in extra_rows or []),
                ]
            )
        except TableTransactionError as error:
            if error.status_code != 409:
                raise
        except ServiceResponseError:
            # Sent, but the answer was lost: it may have committed. If our rows are there, it did.
            answer_lost = True
        placeholder = rows.get(login_row["PartitionKey"], login_row["RowKey"], operation)
        if placeholder is not None and placeholder.get("UserId") == login_row["UserId"]:
            # Ours: the transaction committed but its answer was lost.
            account = rows.get(account_row["PartitionKey"], account_row["RowKey"], operation)
            return [
                {"etag": placeholder.metadata["etag"]},
                {"etag": account.metadata["etag"] if account else ""},
            ]
        if placeholder is None:
            # The lost transaction did not commit; or the row that conflicted is gone again.
            raise StorageUnavailable() if answer_lost else ConflictError()
        if "UserId" in placeholder:
            return None
        claim = {"mode": UpdateMode.REPLACE, **unchanged(placeholder.metadata["etag"])}
        try:
            return rows.table().submit_transaction(
                [("update", login_row, claim), ("create", account_row)]
                + [("create", r) for r in extra_rows or []]
            )
        except TableTransactionError as error:
            if error.status_code in (409, 412):
                return None  # another registration claimed it first
            raise
