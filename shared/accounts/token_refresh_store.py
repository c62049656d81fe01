"""The one write of a refresh: the device session with its new refresh token, if the row is unchanged.

A refresh token is spent by rewriting its session's property (:mod:`shared.sessions.devices`)
with the successor's digest, guarded by the account row's ETag. Two instances
that read the row together and both try to spend the same token cannot both
succeed: the second write fails, that request reads again and finds the token
spent (see :mod:`shared.accounts.token_refresh`). The guard also keeps a session
ended meanwhile (logout, revocation, a password change) from being written back.
"""

from __future__ import annotations

import dataclasses

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.accounts.store import Account
from shared.errors import ConflictError
from shared.sessions.devices import DeviceSession
from shared.settings import StorageSettings
from shared.storage import storage_errors, table_client
from shared.storage.rows import partition_for_email, user_row_key

__all__ = ["store_rotated_session"]


def store_rotated_session(storage: StorageSettings, account: Account, device: DeviceSession) -> Account:
    """Write ``device`` (its new refresh state and last-seen time) onto the account row as read.

    :returns: the account as it is now.
    :raises ConflictError: the row changed since it was read (nothing written): read again.
    :raises StorageUnavailable: storage could not be reached.
    """
    row = {"PartitionKey": partition_for_email(account.email), "RowKey": user_row_key(account.user_id)}
    written = device.to_property()
    with storage_errors("rotate refresh token"):
        try:
            answer = table_client(storage).update_entity(
                row | written,
                mode=UpdateMode.MERGE,
                etag=account.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConflictError() from None
    sessions = tuple(device if s.id == device.id else s for s in account.sessions)
    return dataclasses.replace(
        account, etag=str(answer["etag"]), raw={**account.raw, **written}, sessions=sessions
    )
