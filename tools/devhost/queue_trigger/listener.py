"""One queue polled for one function (``QueueListener.cs``, ``QueueProcessor.cs``).

See the package's docstring for the sources, and :class:`QueueListener` for what it does.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from queue import SimpleQueue

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from tools.devhost.queue_trigger.backoff import RandomizedExponentialBackoff
from tools.devhost.queue_trigger.options import MINIMUM_POLLING_INTERVAL, QueuesOptions
from tools.devhost.queue_trigger.trigger import QueueFunction, decode_body, trigger_message

logger = logging.getLogger("devhost.queue")


#: The visibility the listener receives messages with, renewed at half-time while the function
#: runs (``QueueListener._visibilityTimeout`` and ``CreateUpdateMessageVisibilityTimer``).
MESSAGE_VISIBILITY = 600.0


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
