"""Which rows of the sweeps are dead, and how they go: If-Match deletes, one transaction per partition.

Every delete is conditional on the ETag read with the row, in transactions of
up to 100 rows of one partition; a row changed since the read, or already
gone, is left out (:func:`delete_unchanged`). The rules of each kind of row
(:class:`CounterWindows`, :func:`placeholder_is_dead`, :func:`code_is_dead`)
are described in :mod:`shared.operations.cleanup`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableEntity, TableTransactionError

from shared.settings import Settings
from shared.storage import storage_errors
from shared.throttling.lockout import HOUR, RateLimit

__all__ = [
    "CounterWindows",
    "DeadRow",
    "code_is_dead",
    "dead_row",
    "delete_unchanged",
    "placeholder_is_dead",
    "transactions",
]

#: Operations an entity-group transaction takes at most.
_TRANSACTION_LIMIT = 100
#: The shortest window assumed for a counter whose action has no limit now.
_UNKNOWN_ACTION_WINDOW = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DeadRow:
    """A row found dead, with the ETag it was read with."""

    partition_key: str
    row_key: str
    etag: str


def delete_unchanged(table: TableClient, rows: Sequence[DeadRow]) -> int:
    """Delete those of ``rows`` (of one partition, at most 100) unchanged since read; return how many went.

    One transaction, each delete If-Match the row's ETag. A row changed (412)
    or gone (404) since it was read fails it; then one query finds which rows
    are still as read, and they go together. Should that fail too (another
    run is deleting the same rows), they go one at a time.

    :raises StorageUnavailable: storage failed.
    """
    with storage_errors("delete dead rows"):
        if _delete_together(table, rows):
            return len(rows)
        unchanged = _unchanged(table, rows) if len(rows) > 1 else []
        if len(unchanged) > 1 and _delete_together(table, unchanged):
            return len(unchanged)
        return sum(_delete_together(table, [row]) for row in unchanged)


def _delete_together(table: TableClient, rows: Sequence[DeadRow]) -> bool:
    """Delete ``rows`` in one transaction, each If-Match its ETag; ``False`` if one had changed or gone."""
    operations = [
        (
            "delete",
            {"PartitionKey": row.partition_key, "RowKey": row.row_key},
            {"etag": row.etag, "match_condition": MatchConditions.IfNotModified},
        )
        for row in rows
    ]
    try:
        table.submit_transaction(operations)
    except TableTransactionError as error:
        if error.status_code not in (404, 412):
            raise
        return False
    return True


def _unchanged(table: TableClient, rows: Sequence[DeadRow]) -> list[DeadRow]:
    """Those of ``rows`` (of one partition) still there with the ETag they were read with: one query."""
    keys = sorted(row.row_key for row in rows)
    query = "PartitionKey eq @partition and RowKey ge @first and RowKey le @last"
    parameters = {"partition": rows[0].partition_key, "first": keys[0], "last": keys[-1]}
    found = table.query_entities(query, parameters=parameters, select=["RowKey"])
    etags = {str(entity["RowKey"]): entity.metadata["etag"] for entity in found}
    return [row for row in rows if etags.get(row.row_key) == row.etag]


def transactions(rows: list[DeadRow]) -> Iterator[list[DeadRow]]:
    """``rows`` in groups that one transaction takes: one partition, at most 100."""
    for _, group in groupby(rows, key=lambda row: row.partition_key):
        batch = list(group)
        for start in range(0, len(batch), _TRANSACTION_LIMIT):
            yield batch[start : start + _TRANSACTION_LIMIT]


class CounterWindows:
    """The window of each counter's action, as the limiter reads it now."""

    def __init__(self, settings: Settings) -> None:
        limits = settings.address_limits
        by_action = {"register": limits.register, "login": limits.login, "mail": limits.mail}
        self._windows = {action: _seconds(limit) for action, limit in by_action.items() if limit.enabled}
        self._mail_kind = _seconds(settings.mail.limit) if settings.mail.limit.enabled else None
        configured = [*self._windows.values(), *([self._mail_kind] if self._mail_kind else [])]
        self._unknown = max([_UNKNOWN_ACTION_WINDOW, *configured])
        self.shortest = min([self._unknown, *configured])

    def window(self, action: str) -> timedelta:
        if action in self._windows:
            return self._windows[action]
        if action.startswith("mail-") and self._mail_kind is not None:
            return self._mail_kind
        return self._unknown

    def is_dead(self, entity: TableEntity, now: datetime) -> bool:
        """Whether neither the counter's window nor the one after it has any time left."""
        _, action, _ = _split_counter_key(str(entity["RowKey"]))
        start: datetime | None = entity.get("WindowStart")
        return start is not None and start + 2 * self.window(action) <= now


def _seconds(limit: RateLimit) -> timedelta:
    return timedelta(seconds=limit.seconds)


def _split_counter_key(row_key: str) -> tuple[str, str, str]:
    """``rate:<action>:<digest>`` as its three parts (an action may hold a dash, never a colon)."""
    prefix, _, rest = row_key.partition(":")
    action, _, digest = rest.rpartition(":")
    return prefix, action, digest


def placeholder_is_dead(entity: TableEntity, now: datetime) -> bool:
    """A login row of no account whose lock has ended and whose hour of counted failures has passed."""
    if entity.get("UserId"):
        return False
    locked_until: datetime | None = entity.get("LockedUntil")
    window_start: datetime | None = entity.get("FailureWindowStart")
    lock_over = locked_until is None or locked_until <= now
    return lock_over and (window_start is None or window_start + HOUR <= now)


def code_is_dead(entity: TableEntity, now: datetime) -> bool:
    expires_at: datetime | None = entity.get("ExpiresAt")
    return expires_at is not None and expires_at <= now


def dead_row(entity: TableEntity) -> DeadRow:
    etag = entity.metadata["etag"]
    if etag is None:  # every entity the service returns has one
        raise ValueError("an entity without an ETag")
    return DeadRow(str(entity["PartitionKey"]), str(entity["RowKey"]), etag)
