"""Storage settings (``ACCOUNTS_TABLE*``, ``ACCOUNTS_STORAGE_CONNECTION``, ``AUTH_STORAGE_TIMEOUT_SECONDS``).

The type and its parsing; :mod:`shared.storage` builds the clients from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.errors import SettingError
from shared.settings.reader import Reader

__all__ = [
    "DEFAULT_STORAGE_TIMEOUT_SECONDS",
    "MAX_STORAGE_TIMEOUT_SECONDS",
    "StorageSettings",
    "load_storage_settings",
    "storage_settings",
    "storage_timeout",
]

#: ``AUTH_STORAGE_TIMEOUT_SECONDS``'s default: the most one call to the accounts table or the mail
#: queue may take, every attempt and back-off included.
DEFAULT_STORAGE_TIMEOUT_SECONDS = 5
MAX_STORAGE_TIMEOUT_SECONDS = 60
_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")


@dataclass(frozen=True, slots=True)
class StorageSettings:
    """Where accounts are stored, and how the service signs in to that storage.

    Exactly one of ``endpoint`` (a managed identity through
    ``DefaultAzureCredential``, the production default) and
    ``connection_string`` (local development and Azurite) is set.
    """

    table_name: str
    connection_string: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    #: ``AUTH_STORAGE_TIMEOUT_SECONDS``: the most one storage call may take, its retries included.
    timeout_seconds: int = DEFAULT_STORAGE_TIMEOUT_SECONDS

    @property
    def uses_identity(self) -> bool:
        """Whether the client signs in with an Azure identity rather than an account key."""
        return self.endpoint is not None


def load_storage_settings(environ: Mapping[str, str]) -> StorageSettings:
    """Parse only where accounts are stored (for tools that issue no tokens).

    :raises SettingError: the storage settings are missing or invalid.
    """
    return storage_settings(Reader(environ))


def storage_settings(reader: Reader) -> StorageSettings:
    """The accounts table: its name, where it is, how to sign in to it."""
    table_name = reader.matching("ACCOUNTS_TABLE", _TABLE_NAME, default="Accounts")
    timeout = storage_timeout(reader)
    endpoint = reader.optional("ACCOUNTS_TABLE_ENDPOINT")
    if endpoint is not None:
        parsed = urlsplit(endpoint)
        local = parsed.hostname in ("localhost", "127.0.0.1")
        if (
            parsed.scheme not in ("https", "http")
            or not parsed.hostname
            or (parsed.scheme == "http" and not local)
        ):
            raise SettingError("ACCOUNTS_TABLE_ENDPOINT", "is not an https:// URL of a Table service")
        return StorageSettings(table_name=table_name, endpoint=endpoint.rstrip("/"), timeout_seconds=timeout)
    connection_string = reader.required("ACCOUNTS_STORAGE_CONNECTION", fallback="AzureWebJobsStorage")
    return StorageSettings(
        table_name=table_name, connection_string=connection_string, timeout_seconds=timeout
    )


def storage_timeout(reader: Reader) -> int:
    """``AUTH_STORAGE_TIMEOUT_SECONDS``: shared by the accounts table and the mail queue."""
    return reader.integer(
        "AUTH_STORAGE_TIMEOUT_SECONDS",
        default=DEFAULT_STORAGE_TIMEOUT_SECONDS,
        minimum=1,
        maximum=MAX_STORAGE_TIMEOUT_SECONDS,
    )
