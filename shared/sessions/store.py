"""Sessions per device on the account row: start, touch and end them.

Each session is one property of the account row (see :mod:`shared.sessions.devices`
for its form); ending sessions rewrites the row without them, guarded by its
ETag. Revoking every session (raising the session version, on both of the
account's rows) is the account's own write: :meth:`shared.accounts.store.AccountStore.revoke_sessions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.errors import ConflictError
from shared.sessions.devices import SESSION_PROPERTY_PREFIX, DeviceSession
from shared.storage.clients import storage_errors
from shared.storage.rows import Rows, partition_for_email, unchanged, user_row_key

__all__ = ["SessionRows"]


class SessionRows(Rows):
    """The writes of sessions on an account row."""

    def start_session(self, email: str, user_id: str, session: DeviceSession) -> None:
        """Store a new session on the account row: one write, no read.

        :raises ConflictError: the account is gone.
        """
        row = {"PartitionKey": partition_for_email(email), "RowKey": user_row_key(user_id)}
        with storage_errors("start session"):
            try:
                self.table().update_entity(row | session.to_property(), mode=UpdateMode.MERGE)
            except ResourceNotFoundError:
                raise ConflictError() from None

    def write_seen(self, email: str, user_id: str, etag: str, session: DeviceSession) -> str | None:
        """Store ``session`` (its last-seen time) if the row is unchanged since read (best effort).

        :returns: the row's new ETag, or ``None`` when it changed or is gone (nothing written).
        """
        row = {"PartitionKey": partition_for_email(email), "RowKey": user_row_key(user_id)}
        with storage_errors("touch session"):
            try:
                answer = self.table().update_entity(
                    row | session.to_property(), mode=UpdateMode.MERGE, **unchanged(etag)
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return str(answer["etag"])

    def write_without(self, raw: Mapping[str, Any], etag: str, live: set[str]) -> tuple[str, dict[str, Any]]:
        """Rewrite the account row ``raw`` keeping only the sessions in ``live``.

        :returns: the row's new ETag and the row as written.
        :raises ConflictError: the row changed since read; read again and retry.
        """
        row = {
            name: value
            for name, value in raw.items()
            if not name.startswith(SESSION_PROPERTY_PREFIX) or name[len(SESSION_PROPERTY_PREFIX) :] in live
        }
        with storage_errors("end sessions"):
            try:
                answer = self.table().update_entity(row, mode=UpdateMode.REPLACE, **unchanged(etag))
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConflictError() from None
        return str(answer["etag"]), row
