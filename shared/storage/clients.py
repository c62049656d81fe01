"""The storage clients (the accounts table, the mail queue): created once per process, with bounded waiting.

Microsoft's guidance for Functions is to create SDK clients once and reuse them
across invocations; :func:`table_client` and :func:`mail_queue` do that, and
create the table or queue if it is missing once per process (not per request).

Every storage call is bounded: a 3 s connect timeout, a 5 s read timeout, at
most two retries with short back-off, and an overall budget per call
(``AUTH_STORAGE_TIMEOUT_SECONDS``, default :data:`STORAGE_CALL_BUDGET_SECONDS`),
after which the request gets 503. The mail queue's client keeps the same
bounds, with its own retry policy (:mod:`shared.storage.queue_retry`).

The HTTP transport reads the environment once, when the client is built, not on
every call (``requests`` otherwise walks ``os.environ`` for proxy settings per
request): ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` with ``NO_PROXY``, and
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, as ``requests`` reads them, for the
client's own endpoint. A change to them takes effect in the next process. The CA
bundle is handed to ``requests`` only for an ``https`` endpoint: given a path,
``requests`` asks the file system whether it is a folder on every call, and a
plain-HTTP endpoint (Azurite) has no certificate to check.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceExistsError
from azure.core.pipeline import PipelineRequest
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

from shared.errors import StorageUnavailable
from shared.settings.mail import QueueSettings
from shared.settings.storage import DEFAULT_STORAGE_TIMEOUT_SECONDS, StorageSettings

if TYPE_CHECKING:
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.queue import QueueClient

__all__ = [
    "CLIENT_OPTIONS",
    "STORAGE_CALL_BUDGET_SECONDS",
    "StorageRequestCounter",
    "client_options",
    "http_transport",
    "mail_queue",
    "new_table_client",
    "reset_clients",
    "reset_queues",
    "storage_errors",
    "storage_requests",
    "table_client",
    "use_environment_proxy",
]

logger = logging.getLogger(__name__)
# The SDK logs every request URL at INFO; ours carry emails in their keys.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

#: The default of ``AUTH_STORAGE_TIMEOUT_SECONDS``: the most one storage call may take, retries included.
STORAGE_CALL_BUDGET_SECONDS = DEFAULT_STORAGE_TIMEOUT_SECONDS
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 5


class StorageRequestCounter:
    """Counts the HTTP requests sent to Table Storage on behalf of this thread; each retry counts.

    Installed as the clients' ``raw_request_hook`` (azure-core's custom hook
    policy, which runs after the retry policy, once per attempt). The count
    lives in a context variable, so work the thread hands to a pool in a copy
    of its context (as :mod:`shared.throttling.rate_limiter` does) is counted with it.
    """

    def __init__(self) -> None:
        self._tally: contextvars.ContextVar[list[int]] = contextvars.ContextVar("storage_requests")
        self._lock = threading.Lock()

    def __call__(self, request: PipelineRequest[HttpRequest]) -> None:
        tally = self._current()
        with self._lock:
            tally[0] += 1

    @property
    def count(self) -> int:
        """Requests sent since the last :meth:`reset` in this thread (and the work it handed off)."""
        return self._current()[0]

    def reset(self) -> None:
        self._tally.set([0])

    def _current(self) -> list[int]:
        try:
            return self._tally.get()
        except LookupError:
            tally = [0]
            self._tally.set(tally)
            return tally


storage_requests = StorageRequestCounter()

#: Retries shared by the table and queue clients (the queue's back-off is its own: :mod:`.queue_retry`).
RETRY_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_connect": 2,
    "retry_read": 1,
    "retry_status": 2,
}


def client_options(timeout_seconds: int) -> dict[str, Any]:
    """Keyword arguments for a Table client whose every call is bounded by ``timeout_seconds``."""
    return {
        "raw_request_hook": storage_requests,
        **RETRY_OPTIONS,
        "retry_backoff_factor": 0.2,
        "retry_backoff_max": 1,
        "timeout": timeout_seconds,  # azure-core's overall budget per call, attempts and back-offs included
    }


#: The options of a client on the default budget (for callers that build their own client).
CLIENT_OPTIONS: dict[str, Any] = client_options(STORAGE_CALL_BUDGET_SECONDS) | {
    "connection_timeout": CONNECT_TIMEOUT_SECONDS,
    "read_timeout": READ_TIMEOUT_SECONDS,
}


def http_transport(timeout_seconds: int) -> RequestsTransport:
    """A ``requests`` transport that reads no environment per call (see the module's docstring).

    Call :func:`use_environment_proxy` with the client's URL once the client exists. Imported here,
    on the first client: ``requests`` and azure-core's transport stay out of every function's cold start.
    """
    from azure.core.pipeline.transport import RequestsTransport  # noqa: PLC0415

    return RequestsTransport(
        use_env_settings=False,
        connection_timeout=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds),
        read_timeout=min(READ_TIMEOUT_SECONDS, timeout_seconds),
    )


def use_environment_proxy(transport: RequestsTransport, url: str) -> None:
    """Route ``transport`` through the proxy the environment names for ``url`` (NO_PROXY applied), once.

    For an ``https`` ``url``, the CA bundle the environment names too (see the module's docstring).
    """
    from requests.utils import get_environ_proxies  # noqa: PLC0415 - with the transport, on first use

    transport.open()  # creates its session; no request is sent
    proxies = {k: v for k, v in get_environ_proxies(url).items() if k in ("http", "https", "all")}
    transport.session.proxies.update(proxies)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle and url.lower().startswith("https:"):
        transport.connection_config.verify = bundle


_lock = threading.Lock()
_Settings = TypeVar("_Settings", StorageSettings, QueueSettings)
_Client = TypeVar("_Client", TableClient, "QueueClient")
_clients: dict[StorageSettings, TableClient] = {}
_queues: dict[QueueSettings, QueueClient] = {}


def table_client(settings: StorageSettings) -> TableClient:
    """Return this process's client for the accounts table, creating the table if missing.

    :raises StorageUnavailable: the table could not be reached or created; the
        next call tries again.
    """
    return _once(_clients, settings, new_table_client, lambda client: client.create_table(), "create table")


def _once(
    cache: dict[_Settings, _Client],
    settings: _Settings,
    build: Callable[[_Settings], _Client],
    create: Callable[[_Client], object],
    operation: str,
) -> _Client:
    """The cached client for ``settings``, built and its table or queue created on first use."""
    client = cache.get(settings)
    if client is not None:
        return client
    with _lock:
        client = cache.get(settings)
        if client is None:
            client = build(settings)
            with storage_errors(operation), contextlib.suppress(ResourceExistsError):
                create(client)
            cache[settings] = client
    return client


def _close_all(cache: dict[_Settings, _Client]) -> None:
    with _lock:
        for client in cache.values():
            client.close()
        cache.clear()


def new_table_client(settings: StorageSettings) -> TableClient:
    """Build a client (no request is sent): by managed identity when an endpoint is set.

    With ``ACCOUNTS_TABLE_ENDPOINT``, ``DefaultAzureCredential`` signs in: the
    app's managed identity on Azure (``AZURE_CLIENT_ID`` picks a user-assigned
    one), a developer's Azure CLI login locally.
    """
    transport = http_transport(settings.timeout_seconds)
    options = client_options(settings.timeout_seconds) | {"transport": transport}
    if settings.endpoint is not None:
        # Imported only here: azure-identity is not needed with a connection string.
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        client = TableClient(settings.endpoint, settings.table_name, credential=credential, **options)
    elif settings.connection_string is None:
        raise ValueError("storage settings name neither an endpoint nor a connection string")
    else:
        client = TableClient.from_connection_string(
            settings.connection_string, settings.table_name, **options
        )
    use_environment_proxy(transport, client.url)
    return client


@contextlib.contextmanager
def storage_errors(operation: str) -> Iterator[None]:
    """Turn any storage failure left unhandled by the caller into :class:`StorageUnavailable`."""
    try:
        yield
    except ClientAuthenticationError as error:
        logger.error("Storage refused our credentials during %s: %s", operation, type(error).__name__)
        raise StorageUnavailable() from None
    except AzureError as error:
        status = getattr(error, "status_code", None)
        logger.warning("Storage failed during %s: %s (status %s)", operation, type(error).__name__, status)
        raise StorageUnavailable() from None


def reset_clients() -> None:
    """Close and forget every cached client (tests, or after a settings change)."""
    _close_all(_clients)


def mail_queue(settings: QueueSettings) -> QueueClient:
    """Return this process's client for the mail queue, creating the queue once if missing.

    :raises StorageUnavailable: the queue could not be reached; the next call tries again.
    """
    return _once(_queues, settings, _new_queue_client, lambda client: client.create_queue(), "create queue")


def reset_queues() -> None:
    """Close and forget every cached queue client (tests, or after a settings change)."""
    _close_all(_queues)


def _new_queue_client(settings: QueueSettings) -> QueueClient:
    # Imported on first use: the queue SDK costs ~100 ms of cold start, and most requests send no mail.
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy  # noqa: PLC0415

    from shared.storage.queue_retry import BudgetedRetry  # noqa: PLC0415 - imports the queue SDK

    transport = http_transport(settings.timeout_seconds)
    options: dict[str, Any] = {
        "message_encode_policy": TextBase64EncodePolicy(),
        "raw_request_hook": storage_requests,
        "retry_policy": BudgetedRetry(settings.timeout_seconds, **RETRY_OPTIONS),
        "transport": transport,
    }
    if settings.endpoint is not None:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only for identity-based access

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        client = QueueClient(settings.endpoint, settings.name, credential=credential, **options)
    elif settings.connection_string is None:
        raise ValueError("the mail queue has neither an endpoint nor a connection string")
    else:
        client = QueueClient.from_connection_string(
            _with_development_storage(settings.connection_string), settings.name, **options
        )
    use_environment_proxy(transport, client.url)
    return client


def _with_development_storage(connection_string: str) -> str:
    """``UseDevelopmentStorage=true`` names Azurite's well-known account on its default ports."""
    if connection_string.replace(" ", "").lower().rstrip(";") != "usedevelopmentstorage=true":
        return connection_string
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    )
