"""Changes made with a one-time code: a reset password, a verified email, an email's move.

Each is one transaction that also uses the code up (the code's row is in the
account's partition, :mod:`shared.recovery.codes`), guarded by the ETags of
what was read, so a code is used once and only for the account it was issued to.
A move that was begun is finished by :meth:`shared.accounts.moves.MoveRows.resume_move`.
"""

from __future__ import annotations

from typing import Any

from azure.data.tables import UpdateMode

from shared.accounts.moves import MoveOutcome
from shared.accounts.store import Account, AccountStore, Credentials
from shared.errors import ConflictError
from shared.storage.rows import Operation, email_row_key, partition_for_email, unchanged, user_row_key
from shared.throttling.store import NO_FAILURES

__all__ = ["RecoveryStore"]


class RecoveryStore:
    """The writes of the recovery flows, on an account store's rows (and its alias cache)."""

    def __init__(self, accounts: AccountStore) -> None:
        self._accounts = accounts

    def reset_password(
        self,
        credentials: Credentials,
        password_hash: str,
        use_code: Operation,
        *,
        clear_failures: bool = True,
    ) -> int:
        """Store a new hash, revoke every token, clear the lockout (unless ``clear_failures`` is false)
        and mark the email verified, using the code up, in one transaction guarded by the login row's ETag.

        :returns: the new session version.
        :raises ConflictError: the account or the code changed since read; nothing written.
        """
        new_version = credentials.session_version + 1
        changes = {"SessionVersion": new_version, "EmailVerified": True}
        login_changes: dict[str, Any] = changes | {"PasswordHash": password_hash}
        if clear_failures:
            login_changes |= NO_FAILURES
        self._change_with_code(credentials, login_changes, changes, use_code, "reset password")
        return new_version

    def mark_verified(self, credentials: Credentials, use_code: Operation) -> None:
        """Mark the account's email verified, using the code up, in one transaction.

        :raises ConflictError: the account or the code changed since read; nothing written.
        """
        changes = {"EmailVerified": True}
        self._change_with_code(credentials, changes, changes, use_code, "verify email")

    def _change_with_code(
        self,
        credentials: Credentials,
        login_changes: dict[str, Any],
        account_changes: dict[str, Any],
        use_code: Operation,
        operation: str,
    ) -> None:
        partition = partition_for_email(credentials.email)
        merge = {"mode": UpdateMode.MERGE}
        login_row = {"PartitionKey": partition, "RowKey": email_row_key(credentials.email), **login_changes}
        account_row = {
            "PartitionKey": partition,
            "RowKey": user_row_key(credentials.user_id),
            **account_changes,
        }
        self._accounts.transact(
            [
                ("update", login_row, merge | unchanged(credentials.etag)),
                ("update", account_row, merge),  # must exist (If-Match: *)
                use_code,
            ],
            operation,
        )

    def move_email(self, account: Account, new_email: str, use_code: Operation) -> MoveOutcome:
        """Move ``account`` to ``new_email`` (verified), using the code up; see the module's docstring.

        :raises ConflictError: the account or the code changed since read; nothing written.
        :raises StorageUnavailable: storage failed part way; :meth:`resume_move` finishes the move.
        """
        old_partition = partition_for_email(account.email)
        if partition_for_email(new_email) == old_partition:
            return self._move_within_partition(account, new_email, use_code)
        login = self._accounts.get(old_partition, email_row_key(account.email), "read login")
        if login is None or login.get("UserId") != account.user_id:
            raise ConflictError()
        marks = {"mode": UpdateMode.MERGE}
        self._accounts.transact(
            [
                (
                    "update",
                    {"PartitionKey": old_partition, "RowKey": login["RowKey"], "MovingTo": new_email},
                    marks | unchanged(login.metadata["etag"]),
                ),
                (
                    "update",
                    {
                        "PartitionKey": old_partition,
                        "RowKey": user_row_key(account.user_id),
                        "MovingTo": new_email,
                    },
                    marks | unchanged(account.etag),
                ),
                use_code,
            ],
            "begin email change",
        )
        return self._accounts.resume_move(account.user_id, account.email, new_email)

    def _move_within_partition(self, account: Account, new_email: str, use_code: Operation) -> MoveOutcome:
        """Both emails share a partition: the whole move is one transaction."""
        partition = partition_for_email(account.email)
        login = self._accounts.get(partition, email_row_key(account.email), "read login")
        if login is None or login.get("UserId") != account.user_id:
            raise ConflictError()
        target = self._accounts.get(partition, email_row_key(new_email), "read new login")
        if target is not None and "UserId" in target:
            return MoveOutcome.EMAIL_TAKEN
        new_login = {k: v for k, v in login.items() if k not in ("MovingTo", "MovedFrom")}
        new_login |= {"RowKey": email_row_key(new_email), "Email": new_email, "EmailVerified": True}
        if target is None:
            write_new: Operation = ("create", new_login)
        else:  # a placeholder holding a failure record: take it over
            write_new = (
                "update",
                new_login,
                {"mode": UpdateMode.REPLACE, **unchanged(target.metadata["etag"])},
            )
        account_row = {
            "PartitionKey": partition,
            "RowKey": user_row_key(account.user_id),
            "Email": new_email,
            "EmailVerified": True,
        }
        try:
            self._accounts.transact(
                [
                    (
                        "delete",
                        {"PartitionKey": partition, "RowKey": login["RowKey"]},
                        unchanged(login.metadata["etag"]),
                    ),
                    write_new,
                    ("update", account_row, {"mode": UpdateMode.MERGE, **unchanged(account.etag)}),
                    use_code,
                ],
                "change email",
            )
        except ConflictError:
            target = self._accounts.get(partition, email_row_key(new_email), "read new login")
            if target is not None and "UserId" in target and target["UserId"] != account.user_id:
                return MoveOutcome.EMAIL_TAKEN
            raise
        return MoveOutcome.MOVED
