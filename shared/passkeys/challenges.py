"""Challenges in Table Storage: bound to a flow (and, to add a passkey, an account), used once.

A challenge is 32 random bytes. Its row is in the accounts table, so every
instance sees it, and the answer to it may reach any instance:

================  ====================================  =============================================
PartitionKey      RowKey                                properties
================  ====================================  =============================================
``pkch-`` + 2     ``challenge:`` + base64url of SHA-256  ``Flow`` (``registration`` or
hex digits        of the challenge                      ``authentication``), ``UserId`` (registration),
                                                        ``ExpiresAt``
================  ====================================  =============================================

Using a challenge reads its row and deletes it on condition that it is
unchanged since the read (If-Match its ETag): of two requests answering the
same challenge, on one instance or two, one delete succeeds and the other finds
the row gone. The row is deleted before the answer is checked, so a wrong
answer uses the challenge up too. Rows of challenges never answered are
deleted by the scheduled cleanup once ``ExpiresAt`` has passed.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError

from shared.passkeys.account_row import b64url
from shared.settings import StorageSettings
from shared.storage import storage_errors, table_client

__all__ = ["CHALLENGE_BYTES", "PARTITION_PREFIX", "ChallengeRefused", "ChallengeStore", "Flow"]

CHALLENGE_BYTES = 32
PARTITION_PREFIX = "pkch-"


class Flow(StrEnum):
    """What a challenge is for."""

    REGISTRATION = "registration"
    AUTHENTICATION = "authentication"


class ChallengeRefused(Exception):
    """The answered challenge is not one this flow may use; ``reason`` is for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChallengeStore:
    """Issues and uses up challenges."""

    def __init__(self, storage: StorageSettings, lifetime: timedelta) -> None:
        self._storage = storage
        self._lifetime = lifetime

    def issue(self, flow: Flow, *, user_id: str | None = None, now: datetime | None = None) -> bytes:
        """Store a fresh challenge for ``flow`` (and the account adding a passkey) and return it.

        :raises StorageUnavailable: storage could not be reached.
        """
        expires = (now or datetime.now(UTC)) + self._lifetime
        while True:
            challenge = secrets.token_bytes(CHALLENGE_BYTES)
            row = _keys(challenge) | {"Flow": flow.value, "UserId": user_id or "", "ExpiresAt": expires}
            with storage_errors("store challenge"):
                try:
                    table_client(self._storage).create_entity(row)
                except ResourceExistsError:  # 2**-256: never, but never accept a shared challenge either
                    continue
            return challenge

    def use(self, challenge: bytes, flow: Flow, *, user_id: str | None = None) -> None:
        """Use ``challenge`` up for ``flow`` (and ``user_id``): it is deleted whatever follows.

        :raises ChallengeRefused: not issued, used already, expired, or for another flow or account.
        :raises StorageUnavailable: storage could not be reached.
        """
        keys = _keys(challenge)
        table = table_client(self._storage)
        with storage_errors("use challenge"):
            try:
                row = table.get_entity(keys["PartitionKey"], keys["RowKey"])
            except ResourceNotFoundError:
                raise ChallengeRefused("unknown_challenge") from None
            # A transaction of one delete, because delete_entity takes a 404 for success: here a row
            # gone since the read (another request used it) must fail the delete, as a changed one does.
            unchanged = {"etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}
            try:
                table.submit_transaction([("delete", keys, unchanged)])
            except TableTransactionError as error:
                if error.status_code not in (404, 412):
                    raise
                raise ChallengeRefused("challenge_used") from None
        expires: datetime | None = row.get("ExpiresAt")
        if expires is None or expires <= datetime.now(UTC):
            raise ChallengeRefused("challenge_expired")
        if row.get("Flow") != flow.value:
            raise ChallengeRefused("challenge_of_another_flow")
        if (row.get("UserId") or None) != user_id:
            raise ChallengeRefused("challenge_of_another_account")


def _keys(challenge: bytes) -> dict[str, str]:
    digest = hashlib.sha256(challenge).digest()
    return {"PartitionKey": f"{PARTITION_PREFIX}{digest[0]:02x}", "RowKey": "challenge:" + b64url(digest)}
