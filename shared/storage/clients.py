"""The storage clients (the accounts table, the mail queue): created once per process, with bounded waiting.

Microsoft's guidance for Functions is to create SDK clients once and reuse them
across invocations; :func:`table_client` and :func:`mail_queue` do that, and
create the table or queue if it is missing once per process (not per request).

Every storage call is bounded: a 3 s connect timeout, a 5 s read timeout, at
most two retries with short back-off, and an overall budget per call
(``AUTH_STORAGE_TIMEOUT_SECONDS``, default :data:`STORAGE_CALL_BUDGET_SECONDS`),
after which the request gets 503. The mail queue's client keeps the same
bounds, with its own retry policy (:mod:`shared.storage.queue_retry`).

Calls go out on :class:`~shared.storage.transport.PooledHttpTransport`
(``http.client`` under azure-core's pipeline: about half the CPU of a call through
``requests``). The environment is read once, when a client is built, not on
every call: a client whose endpoint the environment sends through a proxy
(``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` with ``NO_PROXY``, as ``requests``
reads them) is built on azure-core's ``requests`` transport with that proxy
instead; ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` name the CA bundle an
``https`` endpoint is checked against on either. A change to them takes effect
in the next process. ``requests`` is imported only when a proxy variable is set.
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
from shared.storage.transport import PooledHttpTransport, ca_bundle

if TYPE_CHECKING:
    from azure.core.pipeline.transport import HttpTransport
    from azure.storage.queue import QueueClient

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


def http_transport(timeout_seconds: int) -> PooledHttpTransport:
    """The transport of a client on ``timeout_seconds``'s budget (see the module's docstring)."""
    return PooledHttpTransport(
        connection_timeout=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds),
        read_timeout=min(READ_TIMEOUT_SECONDS, timeout_seconds),
        bundle=ca_bundle(),
    )


_PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


def environment_proxies(url: str) -> dict[str, str]:
    """The proxies the environment names for ``url`` (``NO_PROXY`` applied), as ``requests`` reads them."""
    if not any(name.lower() in _PROXY_VARIABLES for name in os.environ):
        return {}
    from requests.utils import get_environ_proxies  # noqa: PLC0415 - only with a proxy variable set

    return {k: v for k, v in get_environ_proxies(url).items() if k in ("http", "https", "all")}


def _on_transport(build: Callable[[HttpTransport[Any, Any]], _Client], timeout_seconds: int) -> _Client:
    """``build`` a client on :func:`http_transport`, or on ``requests`` through the environment's proxy.

    The client's URL is known once it is built (a connection string names it); building sends nothing.
    """
    client = build(http_transport(timeout_seconds))
    proxies = environment_proxies(client.url)
    if not proxies:
        return client
    client.close()
    from azure.core.pipeline.transport import RequestsTransport  # noqa: PLC0415 - only with a proxy

    transport = RequestsTransport(
        use_env_settings=False,  # read once, here, not on every call
        connection_timeout=min(CONNECT_TIMEOUT_SECONDS, timeout_seconds),
        read_timeout=min(READ_TIMEOUT_SECONDS, timeout_seconds),
        connection_verify=ca_bundle() or True,
    )
    client = build(transport)
    transport.open()  # creates its session; no request is sent
    transport.session.proxies.update(proxies)
    return client


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
    return _new_client(
        TableClient,
        settings.table_name,
        endpoint=settings.endpoint,
        connection_string=settings.connection_string,
        options=client_options(settings.timeout_seconds),
        timeout_seconds=settings.timeout_seconds,
    )


def _new_client(
    kind: type[_Client],
    name: str,
    *,
    endpoint: str | None,
    connection_string: str | None,
    options: dict[str, Any],
    timeout_seconds: int,
) -> _Client:
    """A table or queue client for ``name``: by managed identity at ``endpoint``, else by connection string.

    On :func:`_on_transport`'s transport; no request is sent.
    """
    if endpoint is not None:
        # Imported only here: azure-identity is not needed with a connection string.
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        return _on_transport(
            lambda transport: kind(endpoint, name, credential=credential, transport=transport, **options),
            timeout_seconds,
        )
    if connection_string is None:
        raise ValueError(f"{name} has neither an endpoint nor a connection string")
    return _on_transport(
        lambda transport: kind.from_connection_string(
            connection_string, name, transport=transport, **options
        ),
        timeout_seconds,
    )


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

    options: dict[str, Any] = {
        "message_encode_policy": TextBase64EncodePolicy(),
        "raw_request_hook": storage_requests,
        "retry_policy": BudgetedRetry(settings.timeout_seconds, **RETRY_OPTIONS),
    }
    connection_string = settings.connection_string
    return _new_client(
        QueueClient,
        settings.name,
        endpoint=settings.endpoint,
        connection_string=None if connection_string is None else _with_development_storage(connection_string),
        options=options,
        timeout_seconds=settings.timeout_seconds,
    )


def _with_development_storage(connection_string: str) -> str:
    """``UseDevelopmentStorage=true`` names Azurite's well-known account on its default ports."""
    if connection_string.replace(" ", "").lower().rstrip(";") != "usedevelopmentstorage=true":
        return connection_string
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
        "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    )
