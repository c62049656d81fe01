"""Queue-triggered functions for the local host, run the way the Functions host runs them.

The Functions host runs ``queueTrigger`` bindings with the Azure Storage Queues
extension (Microsoft.Azure.WebJobs.Extensions.Storage.Queues 5.x, in extension
bundle 4.x). This module follows its source in Azure/azure-sdk-for-net, under
``sdk/storage/``:

- ``Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Shared/Queues/QueueListener.cs``:
  polling, batches of ``batchSize`` received with a 10-minute visibility, a new
  batch once no more than ``newBatchThreshold`` messages are in flight, back-off
  when the queue is empty or missing;
- ``.../Shared/Timers/RandomizedExponentialBackoffStrategy.cs`` and
  ``.../Shared/Queues/QueuePollingIntervals.cs``: the polling delays;
- ``.../Shared/UpdateQueueMessageVisibilityCommand.cs``: the visibility renewed while a
  function runs;
- ``.../Shared/Queues/QueueProcessor.cs``: delete on success, release with
  ``visibilityTimeout`` on failure, copy to ``<queue>-poison`` once the dequeue
  count reaches ``maxDequeueCount`` (and before invoking if it exceeds it);
- ``.../Shared/Queues/QueuesOptions.cs`` and ``.../Shared/SkuUtility.cs``: the
  ``host.json`` ``extensions.queues`` settings and their defaults;
- ``Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/StorageQueuesWebJobsBuilderExtensions.cs``:
  in the Development environment (which ``func start`` sets) a default
  ``maxPollingInterval`` becomes 2 seconds;
- ``.../Listeners/QueueListenerFactory.cs``: the poison queue's name;
- ``.../Triggers/QueueTriggerAttributeBindingProvider.cs``: ``%setting%`` in the
  queue name, lower-cased and validated;
- ``Microsoft.Azure.WebJobs.Extensions.Clients.Shared`` ``StorageClientProvider.cs``
  and ``Microsoft.Extensions.Azure`` ``ClientFactory.cs``: which settings make
  a connection (a connection string, or ``__accountName`` / ``__queueServiceUri``
  / ``__serviceUri`` with a token credential);
- ``src/Microsoft.Azure.WebJobs.Host/NameResolverExtensions.cs`` in
  Azure/azure-functions-host: ``%name%`` resolution and its error message.

Where this differs from the host, the docstring of the piece says so.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import logging
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any

import azure.functions.queue as func_queue
import requests
import requests.adapters
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.queue import ExponentialRetry, QueueClient, QueueMessage, QueueServiceClient

from tools.emulators.azurite import ACCOUNT_KEY, ACCOUNT_NAME

logger = logging.getLogger("devhost.queue")

#: ``QueuePollingIntervals.Minimum``: the shortest delay between polls of an empty queue.
MINIMUM_POLLING_INTERVAL = 0.1
#: ``QueuePollingIntervals.DefaultMaximum``.
DEFAULT_MAX_POLLING_INTERVAL = 60.0
#: What ``AddAzureStorageQueues`` makes of the default in the Development environment.
DEVELOPMENT_MAX_POLLING_INTERVAL = 2.0
#: ``QueuesOptions.MaxBatchSize``: the Queue service returns at most 32 messages a request.
MAX_BATCH_SIZE = 32
#: The visibility the listener receives messages with, renewed at half-time while the function
#: runs (``QueueListener._visibilityTimeout`` and ``CreateUpdateMessageVisibilityTimer``).
MESSAGE_VISIBILITY = 600.0
POISON_SUFFIX = "-poison"
#: The app setting of a binding that names no connection (``ConnectionStringNames.Storage``,
#: looked up as ``AzureWebJobsStorage``).
DEFAULT_CONNECTION = "Storage"
_CONNECTION_PREFIX = "AzureWebJobs"


def _retry_policy() -> ExponentialRetry:
    """About Azure.Core's default retry (3 retries, exponential from 0.8 s) that the host's clients use.

    azure-storage-queue's own default starts at 15 s, and would hold a poll (and shutdown) for
    a minute when storage is down.
    """
    return ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=3)


_TIMESPAN = re.compile(r"^\s*(?:(\d+)\.)?(\d+):(\d+)(?::(\d+)(?:\.(\d{1,7}))?)?\s*$")
_QUEUE_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


class FunctionIndexingError(Exception):
    """Why the host refuses to index a function (it logs this and does not run the function)."""


# --------------------------------------------------------------------------------------------------
# Settings


def _config_key(name: str) -> str:
    """An app setting name as .NET configuration compares it: ``__`` is ``:``, case ignored."""
    return name.replace("__", ":").lower()


def app_setting(environ: Mapping[str, str], name: str) -> str | None:
    """Look ``name`` (``A:B`` or ``A__B``) up in the app settings as the host's configuration does."""
    if name in environ:
        return environ[name]
    wanted = _config_key(name)
    for key, value in environ.items():
        if _config_key(key) == wanted:
            return value
    return None


def resolve_setting_tokens(text: str, environ: Mapping[str, str]) -> str:
    """Replace every ``%name%`` in ``text`` by that app setting, as ``ResolveWholeString`` does.

    :raises FunctionIndexingError: with the host's message, when a setting is not defined or a
        ``%`` is not closed.
    """
    resolved: list[str] = []
    position = 0
    while (start := text.find("%", position)) >= 0:
        end = text.find("%", start + 1)
        if end < 0:
            raise FunctionIndexingError(f"The '%' at position {start} does not have a closing '%'")
        name = text[start + 1 : end]
        value = app_setting(environ, name)
        if value is None:
            raise FunctionIndexingError(f"'%{name}%' does not resolve to a value.")
        resolved += [text[position:start], value]
        position = end + 1
    return "".join([*resolved, text[position:]])


def parse_timespan(value: object) -> float:
    """Seconds in a ``host.json`` interval: a .NET TimeSpan string or a number of milliseconds.

    ``"hh:mm"``, ``"hh:mm:ss"``, ``"hh:mm:ss.fffffff"`` and ``"d.hh:mm:ss"`` read as .NET's
    ``TimeSpan.Parse`` reads them. A JSON number, or a string of digits only, is milliseconds, as
    Functions 1.x read ``maxPollingInterval``. (The 4.x host's configuration binder would read a
    bare integer string as a number of *days*; milliseconds are kinder to a local host.)

    :raises ValueError: anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"not an interval: {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1000
    text = str(value).strip()
    if text.isdigit():
        return int(text) / 1000
    found = _TIMESPAN.fullmatch(text)
    if found is None:
        raise ValueError(f"not an interval: {value!r}")
    days, hours, minutes, seconds, fraction = found.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds or 0)
    return total + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def processor_count(environ: Mapping[str, str]) -> int:
    """``SkuUtility.ProcessorCount``: 1 on the Consumption plan, else the machine's processors."""
    if (environ.get("WEBSITE_SKU") or "").lower() == "dynamic":
        return 1
    return os.cpu_count() or 1


@dataclass(frozen=True)
class QueuesOptions:
    """``host.json`` ``extensions.queues``, with the Storage Queues extension's defaults.

    Times are in seconds. ``new_batch_threshold`` is resolved: unset, it is
    ``batchSize // 2 * processors`` (``QueuesOptions.NewBatchThreshold``).
    """

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = DEFAULT_MAX_POLLING_INTERVAL
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @property
    def max_concurrency(self) -> int:
        """The most invocations in flight at once: ``batchSize + newBatchThreshold``."""
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_settings(cls, section: Mapping[str, Any], environ: Mapping[str, str]) -> QueuesOptions:
        """Read a ``queues`` section (keys compared case-insensitively, as configuration does).

        ``environ`` gives the Development environment rule (``AZURE_FUNCTIONS_ENVIRONMENT``,
        which ``func start`` sets to ``Development`` unless it is set) and the processor count.

        :raises ValueError: a value the extension's options would reject, with its message.
        """
        values = {key.lower(): value for key, value in section.items()}
        batch_size = int(values.get("batchsize", 16))
        if not 0 < batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"queues.batchSize must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
        threshold = values.get("newbatchthreshold")
        new_batch_threshold = (
            batch_size // 2 * processor_count(environ) if threshold is None else int(threshold)
        )
        if new_batch_threshold < 0:
            raise ValueError("queues.newBatchThreshold must not be negative")
        max_polling_interval = parse_timespan(values.get("maxpollinginterval", "00:01:00"))
        if max_polling_interval < MINIMUM_POLLING_INTERVAL:
            raise ValueError("MaxPollingInterval must not be less than 00:00:00.1000000.")
        environment = environ.get("AZURE_FUNCTIONS_ENVIRONMENT") or "Development"
        if environment.lower() == "development" and max_polling_interval == DEFAULT_MAX_POLLING_INTERVAL:
            max_polling_interval = DEVELOPMENT_MAX_POLLING_INTERVAL
        max_dequeue_count = int(values.get("maxdequeuecount", 5))
        if max_dequeue_count < 1:
            raise ValueError("MaxDequeueCount must not be less than 1.")
        encoding = str(values.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError(f"queues.messageEncoding must be base64 or none, not {encoding!r}")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=new_batch_threshold,
            max_polling_interval=max_polling_interval,
            visibility_timeout=parse_timespan(values.get("visibilitytimeout", "00:00:00")),
            max_dequeue_count=max_dequeue_count,
            message_encoding=encoding,
        )


# --------------------------------------------------------------------------------------------------
# Connections


@dataclass(frozen=True)
class QueueConnection:
    """Where a binding's ``connection`` points: a connection string, or an endpoint and identity.

    ``credential``, ``client_id``, ``tenant_id``, ``client_secret`` and
    ``managed_identity_resource_id`` are the identity-based connection's optional settings.
    """

    setting: str
    connection_string: str | None = field(default=None, repr=False)
    service_uri: str | None = None
    credential: str | None = None
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    managed_identity_resource_id: str | None = None


def development_storage_connection_string(connection_string: str) -> str | None:
    """Expand ``UseDevelopmentStorage=true[;DevelopmentStorageProxyUri=...]`` to Azurite's account.

    :returns: ``None`` when ``connection_string`` is not a development storage one.
    """
    parts = {
        key.strip().lower(): value.strip()
        for key, _, value in (part.partition("=") for part in connection_string.split(";"))
        if key.strip()
    }
    if parts.get("usedevelopmentstorage", "").lower() != "true":
        return None
    proxy = parts.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
    proxy = re.sub(r":\d+$", "", proxy)
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint={proxy}:10001/{ACCOUNT_NAME};"
    )


def resolve_connection(connection: str | None, environ: Mapping[str, str]) -> QueueConnection:
    """Resolve a ``queueTrigger``'s ``connection`` from the app settings, as the host does.

    ``connection`` (``%setting%`` resolved; no value means ``Storage``) names a
    configuration section looked up as ``AzureWebJobs<connection>`` first, then
    ``<connection>`` (each also under ``ConnectionStrings__``). The section's
    value, if any, is a connection string. Otherwise its children make an
    identity-based connection: ``__accountName`` (``https://<account>.queue.
    <endpointSuffix or core.windows.net>``), else ``__queueServiceUri``, else
    ``__serviceUri``, with the token credential ``__credential``, ``__clientId``,
    ``__tenantId``, ``__clientSecret`` and ``__managedIdentityResourceId`` make.

    :raises FunctionIndexingError: no such setting, or one that names no queue endpoint.
    """
    name = resolve_setting_tokens(connection or "", environ).strip() or DEFAULT_CONNECTION
    candidates = [_CONNECTION_PREFIX + name, name]
    for candidate in candidates:
        for key in (f"ConnectionStrings:{candidate}", candidate):
            value = app_setting(environ, key)
            children = _children(environ, key)
            if value is None and not children:
                continue
            if value:
                expanded = development_storage_connection_string(value)
                return QueueConnection(setting=candidate, connection_string=expanded or value)
            return _identity_connection(candidate, children)
    raise FunctionIndexingError(
        f"Storage account connection string '{candidates[0]}' does not exist. "
        "Make sure that it is a defined App Setting."
    )


def _children(environ: Mapping[str, str], section: str) -> dict[str, str]:
    prefix = _config_key(section) + ":"
    return {
        _config_key(key)[len(prefix) :]: value
        for key, value in environ.items()
        if _config_key(key).startswith(prefix) and value
    }


def _identity_connection(setting: str, children: Mapping[str, str]) -> QueueConnection:
    if "accountname" in children:
        suffix = children.get("endpointsuffix") or "core.windows.net"
        service_uri = f"https://{children['accountname']}.queue.{suffix}"
    elif "queueserviceuri" in children:
        service_uri = children["queueserviceuri"]
    elif "serviceuri" in children:
        service_uri = children["serviceuri"]
    else:
        raise FunctionIndexingError(
            f"The connection '{setting}' has neither a connection string nor an accountName, "
            "queueServiceUri or serviceUri."
        )
    return QueueConnection(
        setting=setting,
        service_uri=service_uri,
        credential=children.get("credential"),
        client_id=children.get("clientid"),
        tenant_id=children.get("tenantid"),
        client_secret=children.get("clientsecret"),
        managed_identity_resource_id=children.get("managedidentityresourceid"),
    )


def token_credential(connection: QueueConnection) -> Any:
    """The credential ``ClientFactory.CreateCredential`` makes of an identity-based connection.

    ``credential=managedidentity``: a managed identity (``clientId`` or
    ``managedIdentityResourceId`` for a user-assigned one); ``tenantId`` +
    ``clientId`` + ``clientSecret``: that service principal; otherwise
    ``DefaultAzureCredential`` (with ``clientId`` as its managed identity).
    """
    from azure import identity  # noqa: PLC0415 - only identity-based connections need it

    if (connection.credential or "").lower() == "managedidentity":
        if connection.managed_identity_resource_id:
            return identity.ManagedIdentityCredential(
                identity_config={"resource_id": connection.managed_identity_resource_id}
            )
        return identity.ManagedIdentityCredential(client_id=connection.client_id)
    if connection.tenant_id and connection.client_id and connection.client_secret:
        return identity.ClientSecretCredential(
            connection.tenant_id, connection.client_id, connection.client_secret
        )
    if connection.client_id:
        return identity.DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    return identity.DefaultAzureCredential()


def _transport(pool_size: int) -> RequestsTransport:
    """requests' pool keeps 10 connections a host; the workers of a listener may use more at once."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=True)


def service_client(connection: QueueConnection, *, pool_size: int = 64) -> QueueServiceClient:
    """A Queue service client for ``connection``, without message encoding (see ``QueueListener``)."""
    options: dict[str, Any] = {"retry_policy": _retry_policy(), "transport": _transport(pool_size)}
    if connection.connection_string is not None:
        return QueueServiceClient.from_connection_string(connection.connection_string, **options)
    return QueueServiceClient(str(connection.service_uri), credential=token_credential(connection), **options)


# --------------------------------------------------------------------------------------------------
# Functions


def normalize_queue_name(name: str) -> str:
    """Lower-case and validate a queue name (``NormalizeAndValidate``).

    :raises FunctionIndexingError: not a valid queue name.
    """
    normalized = name.lower()
    if not _QUEUE_NAME.fullmatch(normalized):
        raise FunctionIndexingError(
            f"Invalid queue name: {normalized}. A queue name must be 3 to 63 characters of lowercase "
            "letters, digits and single hyphens, beginning and ending with a letter or digit."
        )
    return normalized


def poison_queue_name(queue_name: str) -> str | None:
    """``<queue>-poison``, or ``None`` for a poison queue or a name too long for the suffix."""
    if queue_name.endswith(POISON_SUFFIX):
        return None
    poison = queue_name + POISON_SUFFIX
    return poison if _QUEUE_NAME.fullmatch(poison) else None


#: Calls a function's entry point with the trigger value and an invocation id; returns its result.
Invoke = Callable[[func_queue.QueueMessage, str], Any]


@dataclass(frozen=True)
class QueueTrigger:
    """A function folder's ``queueTrigger`` binding, resolved against the app settings."""

    function_name: str
    parameter: str
    queue_name: str
    connection: QueueConnection

    @classmethod
    def from_binding(
        cls, function_name: str, binding: Mapping[str, Any], environ: Mapping[str, str]
    ) -> QueueTrigger:
        """Resolve ``queueName`` (``%setting%``) and ``connection`` as the host indexes a function.

        :raises FunctionIndexingError: what the host would log for this function, which it
            then does not run.
        """
        queue_name = normalize_queue_name(resolve_setting_tokens(str(binding.get("queueName", "")), environ))
        return cls(
            function_name=function_name,
            parameter=str(binding.get("name") or "msg"),
            queue_name=queue_name,
            connection=resolve_connection(binding.get("connection"), environ),
        )


@dataclass(frozen=True)
class QueueFunction:
    """A queue-triggered function, ready to be called."""

    trigger: QueueTrigger
    invoke: Invoke

    @property
    def name(self) -> str:
        return self.trigger.function_name


def decode_body(content: str | None, encoding: str) -> bytes:
    """The message body the function gets, from the message text as stored.

    ``base64`` content may hold white space, as .NET's ``Convert.FromBase64String`` allows.

    :raises ValueError: ``base64`` content that is not Base64.
    """
    text = content or ""
    if encoding == "none":
        return text.encode("utf-8")
    try:
        return base64.b64decode("".join(text.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise ValueError("not Base64") from error


def trigger_message(message: QueueMessage, body: bytes) -> func_queue.QueueMessage:
    """The ``azure.functions.QueueMessage`` the Python worker builds from the host's trigger data."""
    built: func_queue.QueueMessage = func_queue.QueueMessage(  # type: ignore[no-untyped-call]
        id=message.id,
        body=body,
        dequeue_count=message.dequeue_count,
        expiration_time=message.expires_on,
        insertion_time=message.inserted_on,
        time_next_visible=message.next_visible_on,
        pop_receipt=message.pop_receipt,
    )
    return built


# --------------------------------------------------------------------------------------------------
# Polling


class RandomizedExponentialBackoff:
    """``RandomizedExponentialBackoffStrategy``: the delay before the next poll of a queue.

    Each call without success since the last one grows the delay from
    ``minimum`` by ``delta * 2**(n-1)`` randomized by ±20 %, up to ``maximum``,
    where it stays; a call after success goes back to ``minimum``.
    """

    RANDOMIZATION_FACTOR = 0.2

    def __init__(
        self,
        minimum: float,
        maximum: float,
        delta: float | None = None,
        *,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if minimum < 0 or maximum < 0:
            raise ValueError("intervals must not be negative")
        if minimum > maximum:
            raise ValueError("the minimum interval must not be greater than the maximum interval")
        self.minimum = minimum
        self.maximum = maximum
        self.delta = minimum if delta is None else delta
        self._rng = rng
        self._current = 0.0
        self._exponent = 0

    def next_delay(self, execution_succeeded: bool) -> float:
        """The delay after a poll; ``execution_succeeded``: a message was found since the last one."""
        if execution_succeeded:
            self._current = self.minimum
            self._exponent = 1
        elif self._current != self.maximum:
            interval = self.minimum
            if self._exponent > 0:
                factor = 1 - self.RANDOMIZATION_FACTOR + 2 * self.RANDOMIZATION_FACTOR * self._rng()
                interval += factor * 2 ** (self._exponent - 1) * self.delta
            if interval < self.maximum:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self.maximum
        return self._current


def _error_code(error: HttpResponseError) -> str:
    return str(getattr(error, "error_code", None) or "")


def _ownership_lost(error: HttpResponseError) -> bool:
    """The message is gone or someone else holds it: nothing more to do with it (as the host)."""
    return isinstance(error, ResourceNotFoundError) or _error_code(error) in (
        "PopReceiptMismatch",
        "MessageNotFound",
        "QueueNotFound",
        "QueueBeingDeleted",
        "QueueDisabled",
    )


class _Lease:
    """One received message while its function runs: its latest pop receipt, renewed at half-time."""

    def __init__(self, message: QueueMessage, renew_at: float) -> None:
        self.message_id = str(message.id)
        self.pop_receipt = str(message.pop_receipt)
        self.renew_at = renew_at
        self.held = True
        self.lock = threading.Lock()

    def release(self) -> str:
        """Stop renewing (waiting for a renewal under way); return the latest pop receipt."""
        with self.lock:
            self.held = False
            return self.pop_receipt


class QueueListener:
    """Polls one queue for one function and runs it for each message, as ``QueueListener`` does.

    Messages are received ``batch_size`` at a time with a visibility of
    ``message_visibility`` (10 minutes, the host's), which a renewal thread
    extends at half-time while the function runs, as the host's
    ``UpdateQueueMessageVisibilityCommand`` does. They run on a pool of
    ``batch_size + new_batch_threshold`` daemon threads; the next batch is
    fetched once no more than ``new_batch_threshold`` are in flight. An empty or
    missing queue, or a storage error, backs the polling off from 100 ms to
    ``max_polling_interval``.

    The message text is received and copied to the poison queue as stored (no
    encode or decode policy on the clients), and decoded here per
    ``message_encoding``: the poison copy then has exactly the original's
    content, and a ``base64`` message that is not Base64 goes straight to the
    poison queue without running the function, as the extension does since 5.0.
    """

    def __init__(
        self,
        function: QueueFunction,
        queue: QueueClient,
        poison_queue: QueueClient | None,
        options: QueuesOptions,
        *,
        message_visibility: float = MESSAGE_VISIBILITY,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.function = function
        self.queue = queue
        self.poison_queue = poison_queue
        self.options = options
        self.message_visibility = message_visibility
        self._rng = rng
        self._stopping = threading.Event()
        self._closed = threading.Event()
        self._changed = threading.Condition()
        self._in_flight = 0
        self._work: SimpleQueue[QueueMessage | None] = SimpleQueue()
        self._leases: dict[str, _Lease] = {}
        self._leases_lock = threading.Lock()
        self._poll_failing = False
        self._missing_logged = False
        self._poller: threading.Thread | None = None
        self._threads: list[threading.Thread] = []

    @property
    def in_flight(self) -> int:
        """How many messages are being processed right now."""
        with self._changed:
            return self._in_flight

    def start(self) -> None:
        """Start polling (a background thread) and the pool that runs the function."""
        name = self.function.name
        self._poller = threading.Thread(target=self._poll, name=f"queue-poll-{name}", daemon=True)
        self._threads = [
            self._poller,
            threading.Thread(target=self._renew, name=f"queue-renew-{name}", daemon=True),
            *(
                threading.Thread(target=self._run_worker, name=f"queue-{name}-{n}", daemon=True)
                for n in range(self.options.max_concurrency)
            ),
        ]
        for thread in self._threads:
            thread.start()

    def stop_polling(self) -> None:
        """Fetch no more messages (those in flight still run)."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop polling, let the invocations in flight finish (up to ``timeout``), stop the threads.

        :returns: whether every invocation finished; messages of any that did not reappear
            when their visibility ends, as after a crash of the host.
        """
        deadline = time.monotonic() + timeout
        self.stop_polling()
        if self._poller is not None:  # a batch being received still runs: let the poll end first
            self._poller.join(max(0.0, deadline - time.monotonic()))
        with self._changed:
            while self._in_flight and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            drained = self._in_flight == 0
        for _ in range(self.options.max_concurrency):
            self._work.put(None)
        self._closed.set()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()) if drained else 0.1)
        if not drained:
            logger.warning(
                "Function %s: %d invocations still running at shutdown", self.function.name, self.in_flight
            )
        return drained

    # -- polling -------------------------------------------------------------------------------

    def _poll(self) -> None:
        backoff = RandomizedExponentialBackoff(
            MINIMUM_POLLING_INTERVAL, self.options.max_polling_interval, rng=self._rng
        )
        queue_exists: bool | None = None
        found_since_last_delay = False
        while not self._stopping.is_set():
            with self._changed:
                while self._in_flight > self.options.new_batch_threshold and not self._stopping.is_set():
                    self._changed.wait()
            if self._stopping.is_set():
                return
            batch: list[QueueMessage] = []
            try:
                if not queue_exists:
                    queue_exists = self._queue_exists()
                if queue_exists:
                    batch = self._receive()
                self._poll_recovered()
            except AzureError as error:
                queue_exists = None  # the host re-checks existence after any error
                self._poll_failed(error)
            except Exception:
                queue_exists = None
                logger.exception("Polling queue %s for %s failed", self.queue.queue_name, self.function.name)
            if batch:
                with self._changed:
                    self._in_flight += len(batch)
                for message in batch:
                    self._work.put(message)
                found_since_last_delay = True
                continue
            delay = backoff.next_delay(found_since_last_delay)
            found_since_last_delay = False
            logger.debug(
                "Function %s: next poll of %s in %.0f ms",
                self.function.name,
                self.queue.queue_name,
                delay * 1000,
            )
            self._stopping.wait(delay)

    def _queue_exists(self) -> bool:
        """``QueueClient.ExistsAsync``; the host polls a missing queue until it exists (logged once here)."""
        try:
            self.queue.get_queue_properties()
        except ResourceNotFoundError:
            if not self._missing_logged:
                self._missing_logged = True
                logger.info(
                    "Function %s: queue %s does not exist (yet)", self.function.name, self.queue.queue_name
                )
            return False
        return True

    def _receive(self) -> list[QueueMessage]:
        pages = self.queue.receive_messages(
            messages_per_page=self.options.batch_size, visibility_timeout=int(self.message_visibility)
        ).by_page()
        return list(next(pages, []))

    def _poll_failed(self, error: AzureError) -> None:
        # Once per outage at WARNING; the polls that follow back off and log at DEBUG.
        level = logging.DEBUG if self._poll_failing else logging.WARNING
        self._poll_failing = True
        logger.log(
            level,
            "Polling queue %s for %s failed (%s); backing off",
            self.queue.queue_name,
            self.function.name,
            type(error).__name__,
        )

    def _poll_recovered(self) -> None:
        if self._poll_failing:
            self._poll_failing = False
            logger.info("Polling queue %s for %s works again", self.queue.queue_name, self.function.name)

    # -- visibility renewal --------------------------------------------------------------------

    def _renew(self) -> None:
        tick = min(1.0, self.message_visibility / 4)
        while not self._closed.wait(tick):
            now = time.monotonic()
            with self._leases_lock:
                due = [lease for lease in self._leases.values() if lease.renew_at <= now]
            for lease in due:
                self._renew_lease(lease)

    def _renew_lease(self, lease: _Lease) -> None:
        with lease.lock:
            if not lease.held:
                return
            try:
                receipt = self.queue.update_message(
                    lease.message_id, lease.pop_receipt, visibility_timeout=int(self.message_visibility)
                )
            except HttpResponseError as error:
                if _ownership_lost(error):
                    lease.held = False
                    logger.warning(
                        "Function %s: lost message %s while it ran", self.function.name, lease.message_id
                    )
                    return
                lease.renew_at = time.monotonic() + self.message_visibility / 8
                return
            except AzureError:
                lease.renew_at = time.monotonic() + self.message_visibility / 8  # try again sooner
                return
            lease.pop_receipt = str(receipt.pop_receipt)
            lease.renew_at = time.monotonic() + self.message_visibility / 2

    # -- processing ----------------------------------------------------------------------------

    def _run_worker(self) -> None:
        while True:
            message = self._work.get()
            if message is None:
                return
            try:
                self._process(message)
            except Exception:
                logger.exception("Function %s: completing message %s failed", self.function.name, message.id)
            finally:
                with self._leases_lock:
                    self._leases.pop(str(message.id), None)
                with self._changed:
                    self._in_flight -= 1
                    self._changed.notify_all()

    def _process(self, message: QueueMessage) -> None:
        lease = _Lease(message, time.monotonic() + self.message_visibility / 2)
        with self._leases_lock:
            self._leases[lease.message_id] = lease
        dequeue_count = int(message.dequeue_count or 0)
        if dequeue_count > self.options.max_dequeue_count:
            # BeginProcessingMessageAsync: poisoned before it runs (e.g. a host stopped mid-run).
            self._move_to_poison(message, lease.release(), self._dequeue_count_reached)
            return
        try:
            body = decode_body(message.content, self.options.message_encoding)
        except ValueError:
            reason = "Message is not Base64 (check queues.messageEncoding); the function does not run."
            self._move_to_poison(message, lease.release(), reason)
            return
        succeeded = self._invoke(message, body)
        pop_receipt = lease.release()
        if succeeded:
            self._delete(message, pop_receipt)
        elif self.poison_queue is None:
            pass  # no poison queue: left invisible, so that it does not loop fast (as the host)
        elif dequeue_count >= self.options.max_dequeue_count:
            self._move_to_poison(message, pop_receipt, self._dequeue_count_reached)
        else:
            self._release(message, pop_receipt)

    def _invoke(self, message: QueueMessage, body: bytes) -> bool:
        invocation_id = str(uuid.uuid4())
        started = time.perf_counter()
        try:
            self.function.invoke(trigger_message(message, body), invocation_id)
            succeeded = True
        except Exception:
            logger.exception(
                "Function %s failed (invocation_id=%s message_id=%s)",
                self.function.name,
                invocation_id,
                message.id,
            )
            succeeded = False
        logger.info(
            "queue %s %s -> %s (%.1f ms) invocation_id=%s message_id=%s dequeue_count=%s",
            self.queue.queue_name,
            self.function.name,
            "Succeeded" if succeeded else "Failed",
            (time.perf_counter() - started) * 1000,
            invocation_id,
            message.id,
            message.dequeue_count,
        )
        return succeeded

    def _delete(self, message: QueueMessage, pop_receipt: str) -> None:
        try:
            self.queue.delete_message(str(message.id), pop_receipt)
        except HttpResponseError as error:
            if not _ownership_lost(error):
                raise
            logger.debug("Function %s: message %s was gone or taken over", self.function.name, message.id)

    def _release(self, message: QueueMessage, pop_receipt: str) -> None:
        """``ReleaseMessageAsync``: visible again after ``visibilityTimeout`` (whole seconds)."""
        try:
            self.queue.update_message(
                str(message.id), pop_receipt, visibility_timeout=int(self.options.visibility_timeout)
            )
        except HttpResponseError as error:
            if not _ownership_lost(error):
                raise

    @property
    def _dequeue_count_reached(self) -> str:
        return f"Message has reached MaxDequeueCount of {self.options.max_dequeue_count}."

    def _move_to_poison(self, message: QueueMessage, pop_receipt: str, reason: str) -> None:
        """``HandlePoisonMessageAsync``: copy the content to the poison queue, delete the message.

        Without a poison queue the message is left invisible, as the host leaves it.
        """
        name = self.function.name
        if self.poison_queue is None:
            logger.warning(
                "Function %s: message %s: %s No poison queue: left invisible.", name, message.id, reason
            )
            return
        queue_name = self.poison_queue.queue_name
        logger.warning(
            "Function %s: message %s: %s Moving message to queue '%s'.", name, message.id, reason, queue_name
        )
        try:
            self.poison_queue.send_message(message.content)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                self.poison_queue.create_queue()
            self.poison_queue.send_message(message.content)
        self._delete(message, pop_receipt)


# --------------------------------------------------------------------------------------------------
# All of them


class QueueHost:
    """The queue listeners of a function app: one client per queue, one listener per function."""

    def __init__(
        self,
        functions: Iterable[QueueFunction],
        options: QueuesOptions,
        *,
        message_visibility: float = MESSAGE_VISIBILITY,
    ) -> None:
        self.functions = list(functions)
        self.options = options
        self.message_visibility = message_visibility
        self.listeners: list[QueueListener] = []
        self._services: dict[QueueConnection, QueueServiceClient] = {}
        self._queues: dict[tuple[QueueConnection, str], QueueClient] = {}

    def queue_client(self, connection: QueueConnection, queue_name: str) -> QueueClient:
        """The one client of this process for ``queue_name`` on ``connection``'s account.

        Connections that differ only in the setting that names them share it.
        """
        account = dataclasses.replace(connection, setting="")
        key = (account, queue_name)
        if key not in self._queues:
            if account not in self._services:
                pool_size = max(10, 2 * self.options.max_concurrency * len(self.functions))
                self._services[account] = service_client(connection, pool_size=pool_size)
            self._queues[key] = self._services[account].get_queue_client(queue_name)
        return self._queues[key]

    def start(self) -> None:
        """Create the clients and start every function's listener."""
        for function in self.functions:
            trigger = function.trigger
            poison_name = poison_queue_name(trigger.queue_name)
            try:
                queue = self.queue_client(trigger.connection, trigger.queue_name)
                poison = None if poison_name is None else self.queue_client(trigger.connection, poison_name)
            except ValueError as error:  # e.g. a malformed connection string
                logger.error("The '%s' function is in error: %s", function.name, error)
                continue
            listener = QueueListener(
                function, queue, poison, self.options, message_visibility=self.message_visibility
            )
            listener.start()
            self.listeners.append(listener)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every listener, letting invocations in flight finish within ``timeout`` overall."""
        deadline = time.monotonic() + timeout
        for listener in self.listeners:
            listener.stop_polling()  # every poll at once; then drain each
        for listener in self.listeners:
            listener.stop(max(0.0, deadline - time.monotonic()))
        self.listeners.clear()
        for queue in self._queues.values():
            queue.close()
        for service in self._services.values():
            service.close()
        self._queues.clear()
        self._services.clear()
