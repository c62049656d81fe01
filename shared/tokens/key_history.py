"""When each signing key started signing and was first published, for ``tools.admin keys status``.

The first time a process signs a token, it makes sure the accounts table has
a row per key it holds (PartitionKey ``keys``, RowKey ``kid:<kid>``) with
``PublishedSince`` (first seen published by any instance) and, for the key
that signs, ``SigningSince``. One query per process; inserts and merges only
when a key is new to the table. Best effort: a storage failure here never
fails a request (the next process tries again). Public facts only: ``kid``,
algorithm, times; never key material.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, ResourceExistsError

from shared.errors import StorageUnavailable
from shared.settings import StorageSettings
from shared.settings.signing import SigningKeys
from shared.storage import storage_errors, table_client

__all__ = ["KEYS_PARTITION", "KeyRecord", "key_records", "note_keys"]

KEYS_PARTITION = "keys"
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the table says of one key."""

    kid: str
    algorithm: str
    published_since: datetime | None
    signing_since: datetime | None


def key_records(storage: StorageSettings) -> dict[str, KeyRecord]:
    """Every key the table has seen, by ``kid``.

    :raises StorageUnavailable: storage could not be reached.
    """
    query = f"PartitionKey eq '{KEYS_PARTITION}'"
    with storage_errors("read key history"):
        rows = list(table_client(storage).query_entities(query))
    return {
        str(row["Kid"]): KeyRecord(
            kid=str(row["Kid"]),
            algorithm=str(row.get("Algorithm", "")),
            published_since=row.get("PublishedSince"),
            signing_since=row.get("SigningSince"),
        )
        for row in rows
    }


def note_keys(storage: StorageSettings, keys: SigningKeys) -> None:
    """Record the keys this process holds, once per process and key set (best effort)."""
    if keys.published:
        _note_once(storage, keys)


@functools.lru_cache(maxsize=8)
def _note_once(storage: StorageSettings, keys: SigningKeys) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    signing = keys.current.kid if keys.current is not None and keys.algorithm.asymmetric else None
    try:
        known = key_records(storage)
        table = table_client(storage)
        for key in keys.published:
            row: dict[str, object] = {
                "PartitionKey": KEYS_PARTITION,
                "RowKey": f"kid:{key.kid}",
                "Kid": key.kid,
            }
            record = known.get(key.kid)
            if record is None:
                row |= {"Algorithm": str(key.algorithm), "PublishedSince": now}
                with contextlib.suppress(ResourceExistsError):  # another instance was first
                    table.create_entity(row | ({"SigningSince": now} if key.kid == signing else {}))
            elif key.kid == signing and record.signing_since is None:
                table.upsert_entity(row | {"SigningSince": now})
    except (StorageUnavailable, AzureError) as error:
        _note_once.cache_clear()  # the next token tries again
        logger.warning("Could not record the signing keys: %s", type(error).__name__)
