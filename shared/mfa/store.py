"""The second-factor row of an account (``mfa:<user id>``, in the account's partition).

Its properties: ``Secret`` and ``Pending`` (sealed, :mod:`shared.mfa.encryption`),
``LastStep`` (the last TOTP time step used, so no code is accepted twice),
``RecoveryCodes`` (keyed digests, JSON) and ``RecoveryKey`` (their key, sealed),
``Challenge``, ``ChallengeExpires`` and ``ChallengeTries`` (a login's second
step). Every write is guarded by the row's ETag. The account's own flags
(``MfaTotp``, ``RecoveryCodesLeft``) change in the same transaction
(:meth:`MfaStore.change_mfa`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.accounts.store import Account
from shared.errors import ConflictError
from shared.settings.storage import StorageSettings
from shared.storage.clients import storage_errors
from shared.storage.rows import (
    Operation,
    Rows,
    decode_key,
    email_row_key,
    instant,
    mfa_row_key,
    partition_for_email,
    unchanged,
    user_row_key,
)
from shared.throttling.store import CLEARED_FAILURES

__all__ = ["MfaRecord", "MfaStore", "mfa_row_key", "mfa_store"]


@dataclass(frozen=True, slots=True)
class MfaRecord:
    """The second-factor row of an account (``mfa:<user id>``, in the account's partition).

    Secrets are sealed (:mod:`shared.mfa.encryption`); recovery codes are
    keyed digests. ``last_step`` is the last TOTP time step used, so that no
    code is accepted twice; every write is guarded by the row's ETag.
    """

    user_id: str
    partition: str
    secret: str | None = None
    pending: str | None = None
    last_step: int | None = None
    recovery_digests: tuple[str, ...] = ()
    challenge: str | None = None
    challenge_expires: datetime | None = None
    #: Codes tried with the current challenge, each counted before it is checked.
    challenge_tries: int = 0
    #: The key(s) of the recovery-code digests, sealed under an encryption key (``None``: codes
    #: digested before keys were stored; they match under a key derived from an encryption key).
    recovery_key: str | None = None
    etag: str | None = None


class MfaStore(Rows):
    """Reads and writes of second-factor rows."""

    def mfa_record(self, account: Account) -> MfaRecord:
        """Read the second-factor row of ``account`` (an empty record if it has none): one point read."""
        partition = partition_for_email(account.email)
        entity = self.get(partition, mfa_row_key(account.user_id), "read second factor")
        if entity is None:
            return MfaRecord(account.user_id, partition)
        return _mfa_record(account.user_id, partition, entity)

    def mfa_pages(
        self, *, page_size: int, continuation: dict[str, str] | None = None
    ) -> Iterator[tuple[list[MfaRecord], dict[str, str] | None]]:
        """Every second-factor row of the table, a page at a time, from ``continuation`` (``None``: start).

        Yields each page with the continuation of the page after it (``None`` after the last).
        """
        query = self.table().query_entities(
            "RowKey ge @low and RowKey lt @high",
            parameters={"low": "mfa:", "high": "mfa;"},
            results_per_page=page_size,
        )
        pages: Any = query.by_page(continuation_token=continuation)  # type: ignore[arg-type]  # a dict
        while True:
            with storage_errors("list second factors"):
                try:
                    entities = list(next(pages))
                except StopIteration:
                    return
            records = [
                _mfa_record(decode_key(e["RowKey"][len("mfa:") :]), e["PartitionKey"], e) for e in entities
            ]
            following: dict[str, str] | None = pages.continuation_token or None
            yield records, following
            if following is None:
                return

    def mfa_record_again(self, record: MfaRecord) -> MfaRecord | None:
        """Read ``record``'s row again (after a lost write), or ``None`` if it is gone."""
        entity = self.get(record.partition, mfa_row_key(record.user_id), "read second factor")
        return None if entity is None else _mfa_record(record.user_id, record.partition, entity)

    def save_mfa(self, record: MfaRecord, **changes: Any) -> bool:
        """Write ``changes`` (row properties) to the second-factor row if unchanged since read.

        :returns: ``False`` when another request wrote the row first (nothing written).
        """
        entity = {"PartitionKey": record.partition, "RowKey": mfa_row_key(record.user_id), **changes}
        return self.write_if_unchanged(entity, record.etag, "write second factor")

    def spend_challenge_try(self, record: MfaRecord) -> MfaRecord | None:
        """Count one more code tried with the row's challenge, if the row is unchanged since read.

        :returns: the row as written (with its new ETag), or ``None`` when another request
            wrote the row first (nothing written; read again).
        """
        tries = record.challenge_tries + 1
        entity = {
            "PartitionKey": record.partition,
            "RowKey": mfa_row_key(record.user_id),
            "ChallengeTries": tries,
        }
        if record.etag is None:
            return None
        with storage_errors("count second-factor try"):
            try:
                metadata = self.table().update_entity(entity, mode=UpdateMode.MERGE, **unchanged(record.etag))
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return dataclasses.replace(record, challenge_tries=tries, etag=metadata["etag"])

    def change_mfa(
        self,
        account: Account,
        record: MfaRecord,
        mfa_changes: dict[str, Any] | None,
        *,
        enabled: bool | None = None,
        recovery_codes_left: int | None = None,
        revoke_sessions: bool = False,
        clear_failures: bool = False,
    ) -> int:
        """Change the second-factor row (``None``: delete it) and the account's flags in one transaction.

        The row is guarded by its ETag (so a code is used once), the account row too.
        ``clear_failures`` also starts the login row's consecutive failure count again
        (a login's second step succeeded).

        :returns: the session version after the change.
        :raises ConflictError: either row changed since read; nothing written.
        """
        if record.etag is None:
            raise ConflictError()
        partition = record.partition
        version = account.session_version + (1 if revoke_sessions else 0)
        flags: dict[str, Any] = {}
        if enabled is not None:
            flags["MfaTotp"] = enabled
        if revoke_sessions:
            flags["SessionVersion"] = version
        account_changes = dict(flags)
        if recovery_codes_left is not None:
            account_changes["RecoveryCodesLeft"] = recovery_codes_left
        mfa_keys = {"PartitionKey": partition, "RowKey": mfa_row_key(record.user_id)}
        merge = {"mode": UpdateMode.MERGE}
        operations: list[Operation] = [
            ("delete", mfa_keys, unchanged(record.etag))
            if mfa_changes is None
            else ("update", mfa_keys | mfa_changes, merge | unchanged(record.etag))
        ]
        if account_changes:
            account_row = {
                "PartitionKey": partition,
                "RowKey": user_row_key(account.user_id),
                **account_changes,
            }
            operations.append(("update", account_row, merge | unchanged(account.etag)))
        login_changes = dict(flags)
        if clear_failures:
            login_changes |= CLEARED_FAILURES
        if login_changes:
            login_row = {"PartitionKey": partition, "RowKey": email_row_key(account.email), **login_changes}
            operations.append(("update", login_row, merge))
        self.transact(operations, "change second factor")
        return version


@functools.lru_cache(maxsize=8)
def mfa_store(settings: StorageSettings) -> MfaStore:
    """The store of second-factor rows for ``settings`` (it holds no connection of its own)."""
    return MfaStore(settings)


def _mfa_record(user_id: str, partition: str, entity: Any) -> MfaRecord:
    digests = json.loads(entity.get("RecoveryCodes") or "[]")
    last_step = entity.get("LastStep", -1)
    return MfaRecord(
        user_id=user_id,
        partition=partition,
        secret=entity.get("Secret") or None,
        pending=entity.get("Pending") or None,
        last_step=int(last_step) if last_step is not None and int(last_step) >= 0 else None,
        recovery_digests=tuple(str(d) for d in digests),
        challenge=entity.get("Challenge") or None,
        challenge_expires=instant(entity.get("ChallengeExpires")),
        challenge_tries=int(entity.get("ChallengeTries") or 0),
        recovery_key=entity.get("RecoveryKey") or None,
        etag=entity.metadata["etag"],
    )
