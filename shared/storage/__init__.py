"""The storage layer: the clients, the rows' keys and guarded writes, and the mail outbox.

- :mod:`shared.storage.clients`: the Table and Queue clients, once per process, with bounded waiting.
- :mod:`shared.storage.rows`: the table's keys and partitions, ETag-guarded writes, transactions.
- :mod:`shared.storage.outbox`: a request for a mail, put on the mail queue.

Each concern keeps the reads and writes of its own rows beside it
(``shared/<concern>/store.py``), built on :mod:`~shared.storage.rows`.
"""

from __future__ import annotations

from shared.storage.clients import (
    CLIENT_OPTIONS,
    STORAGE_CALL_BUDGET_SECONDS,
    StorageRequestCounter,
    client_options,
    environment_proxies,
    http_transport,
    mail_queue,
    new_table_client,
    reset_clients,
    reset_queues,
    storage_errors,
    storage_requests,
    table_client,
)

__all__ = [
    "CLIENT_OPTIONS",
    "STORAGE_CALL_BUDGET_SECONDS",
    "StorageRequestCounter",
    "client_options",
    "environment_proxies",
    "http_transport",
    "mail_queue",
    "new_table_client",
    "reset_clients",
    "reset_queues",
    "storage_errors",
    "storage_requests",
    "table_client",
]
