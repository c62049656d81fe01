"""Queue-triggered functions for the local host, run the way the Functions host runs them.

The Functions host runs ``queueTrigger`` bindings with the Azure Storage Queues
extension (Microsoft.Azure.WebJobs.Extensions.Storage.Queues 5.x, in extension
bundle 4.x). This package follows its source in Azure/azure-sdk-for-net, under
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

Where this differs from the host, the docstring of the piece says so. The modules:
:mod:`.options` (``host.json`` ``extensions.queues``), :mod:`.connections` (a binding's
``connection`` and the clients made of it), :mod:`.trigger` (a ``queueTrigger`` binding and
its message), :mod:`.backoff` (the polling delays), :mod:`.listener` (one function's
queue) and :mod:`.host` (every queue-triggered function of the app).
"""

from tools.devhost.queue_trigger.backoff import RandomizedExponentialBackoff
from tools.devhost.queue_trigger.connections import (
    QueueConnection,
    development_storage_connection_string,
    resolve_connection,
    service_client,
    token_credential,
)
from tools.devhost.queue_trigger.host import QueueHost
from tools.devhost.queue_trigger.listener import MESSAGE_VISIBILITY, QueueListener
from tools.devhost.queue_trigger.options import QueuesOptions, parse_timespan, processor_count
from tools.devhost.queue_trigger.trigger import (
    QueueFunction,
    QueueTrigger,
    decode_body,
    normalize_queue_name,
    poison_queue_name,
    trigger_message,
)

__all__ = [
    "MESSAGE_VISIBILITY",
    "QueueConnection",
    "QueueFunction",
    "QueueHost",
    "QueueListener",
    "QueueTrigger",
    "QueuesOptions",
    "RandomizedExponentialBackoff",
    "decode_body",
    "development_storage_connection_string",
    "normalize_queue_name",
    "parse_timespan",
    "poison_queue_name",
    "processor_count",
    "resolve_connection",
    "service_client",
    "token_credential",
    "trigger_message",
]
