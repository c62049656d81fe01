"""An account follows its email: finishing a move of its rows to the new email's partition.

An account's rows always live in the partition of its current email. Changing
the email therefore moves the account (begun by
:meth:`shared.recovery.store.RecoveryStore.move_email`, with a code): the old
rows are marked ``MovingTo``, copied to the new partition marked
``MovedFrom``, the alias is pointed at the new partition, the old rows are
deleted (the commit point: from then on only the new email logs in), and the
marks are cleared. Any step can be interrupted; :meth:`MoveRows.resume_move`
completes the move from whatever state it finds, or undoes it when the new
email was taken by a registration before the copy. It lives with the account,
not with the email change, because reading an account (a login, a password
check, an operator's action) finishes an interrupted move it finds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from enum import Enum
from typing import Any

from azure.data.tables import UpdateMode

from shared.accounts.aliases import AliasRows
from shared.accounts.rows import create_or_claim
from shared.errors import ConflictError
from shared.events import log_event
from shared.storage.rows import (
    Operation,
    email_row_key,
    mfa_row_key,
    partition_for_email,
    unchanged,
    user_row_key,
)

__all__ = ["MoveOutcome", "MoveRows"]


class MoveOutcome(Enum):
    """How an email change ended."""

    MOVED = "moved"
    #: The new email got an account of its own before the move copied the account there.
    EMAIL_TAKEN = "email taken"
    #: There was no move of this account to resume.
    NOTHING = "nothing to do"


class MoveRows(AliasRows):
    """Finishing (or undoing) a move of an account's rows."""

    def resume_move(self, user_id: str, old_email: str, new_email: str) -> MoveOutcome:
        """Take a move of ``user_id`` from ``old_email`` to ``new_email`` to its end, from any step.

        Safe to call any number of times, from any instance, concurrently.

        :raises StorageUnavailable: storage failed; call again.
        """
        old_partition, new_partition = partition_for_email(old_email), partition_for_email(new_email)
        old_login = self.get(old_partition, email_row_key(old_email), "read old login")
        old_account = self.get(old_partition, user_row_key(user_id), "read old account")
        old_mfa = self.get(old_partition, mfa_row_key(user_id), "read old second factor")
        marked = (
            old_login is not None
            and old_login.get("UserId") == user_id
            and old_login.get("MovingTo") == new_email
            and old_account is not None
        )
        new_login = self.get(new_partition, email_row_key(new_email), "read new login")
        copied = new_login is not None and new_login.get("UserId") == user_id
        if not marked and not copied:
            return MoveOutcome.NOTHING
        if marked and not copied:
            login_row, account_row = _moved_rows(old_login, old_account, new_email)
            extra = [] if old_mfa is None else [_in_partition(old_mfa, new_partition)]
            if create_or_claim(self, login_row, account_row, "copy account", extra) is None:
                self._unmark(old_partition, old_login, old_account)
                log_event("email_change_undone", user_id=user_id, reason="email_taken")
                return MoveOutcome.EMAIL_TAKEN
        self.point_alias(user_id, new_email)
        if marked:
            # The commit point: from here on only the new email logs in.
            old_rows = [email_row_key(old_email), user_row_key(user_id)]
            old_rows += [] if old_mfa is None else [mfa_row_key(user_id)]
            self._delete_rows(old_partition, old_rows, "commit email change")
        cleared = {"MovedFrom": ""}
        self._merge_existing(new_partition, [email_row_key(new_email), user_row_key(user_id)], cleared)
        return MoveOutcome.MOVED

    def _unmark(self, partition: str, login: Any, account: Any) -> None:
        """Undo the first step of a move whose new email was taken."""
        unmarked = {"mode": UpdateMode.MERGE}
        with contextlib.suppress(ConflictError):  # unmarked already, by another resumption
            self.transact(
                [
                    (
                        "update",
                        {"PartitionKey": partition, "RowKey": login["RowKey"], "MovingTo": ""},
                        unmarked | unchanged(login.metadata["etag"]),
                    ),
                    (
                        "update",
                        {"PartitionKey": partition, "RowKey": account["RowKey"], "MovingTo": ""},
                        unmarked | unchanged(account.metadata["etag"]),
                    ),
                ],
                "undo email change",
            )

    def _delete_rows(self, partition: str, row_keys: list[str], operation: str) -> None:
        """Delete those of ``row_keys`` that still exist, together."""
        with contextlib.suppress(ConflictError):  # deleted already, by another resumption
            self.transact(
                [("delete", {"PartitionKey": partition, "RowKey": key}) for key in row_keys], operation
            )

    def _merge_existing(self, partition: str, row_keys: list[str], changes: dict[str, Any]) -> None:
        merge = {"mode": UpdateMode.MERGE}
        operations: list[Operation] = [
            ("update", {"PartitionKey": partition, "RowKey": key, **changes}, merge) for key in row_keys
        ]
        with contextlib.suppress(ConflictError):  # finished already, or deleted since
            self.transact(operations, "finish email change")


def _in_partition(entity: Mapping[str, Any], partition: str) -> dict[str, Any]:
    return dict(entity) | {"PartitionKey": partition}


def _moved_rows(
    login: Mapping[str, Any], account: Mapping[str, Any], new_email: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rows of a moving account in its new partition, marked until the move is finished."""
    partition = partition_for_email(new_email)
    moved = {"Email": new_email, "EmailVerified": True, "MovedFrom": login["Email"]}
    login_row = {k: v for k, v in login.items() if k != "MovingTo"} | moved
    login_row |= {"PartitionKey": partition, "RowKey": email_row_key(new_email)}
    account_row = {k: v for k, v in account.items() if k != "MovingTo"} | moved
    account_row |= {"PartitionKey": partition}
    return login_row, account_row
