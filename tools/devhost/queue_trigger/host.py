"""Every queue-triggered function of the app: one client per queue, one listener per function."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable

from azure.storage.queue import QueueClient, QueueServiceClient

from tools.devhost.queue_trigger.connections import QueueConnection, service_client
from tools.devhost.queue_trigger.listener import MESSAGE_VISIBILITY, QueueListener
from tools.devhost.queue_trigger.options import QueuesOptions
from tools.devhost.queue_trigger.trigger import QueueFunction, poison_queue_name

logger = logging.getLogger("devhost.queue")


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
