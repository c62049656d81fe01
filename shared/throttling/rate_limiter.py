"""Per-client-address rate limits, counted in Table Storage so they hold across instances.

Each (action, client address) has one counter row in the accounts table:

========================  ===============================  ==============================================
PartitionKey              RowKey                           properties
========================  ===============================  ==============================================
``rate-`` + 2 hex digits  ``rate:<action>:<address key>``  ``WindowStart``, ``Attempts``, ``PreviousAttempts``
========================  ===============================  ==============================================

The address key is an HMAC of the address under the signing key, so the table
holds no client addresses. Every increment is a conditional write (If-Match on
the row's ETag, or an insert that fails if the row exists): a writer that loses
a race reads again and counts on top, so no increment is lost. Counts belong to
a window of time and stop counting when it has passed, so counters expire by
themselves; nothing ever resets them.

Cost: each process remembers the rows it wrote with their ETags, so an attempt
from an address this process has seen is one conditional write, and a new
address is one insert; only a lost race costs a read. A client over its limit is
refused from memory with no storage request at all (counts only grow within a
window, so a remembered refusal is never wrong). The count runs on a pool
thread while the request hashes the password, so it adds a request but no
waiting; a process hashes for an address over its limit at most once, after
which it knows and refuses at once.
"""

from __future__ import annotations

import collections
import contextvars
import hashlib
import hmac
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.errors import StorageUnavailable, TooManyAttempts
from shared.events import log_event
from shared.settings import StorageSettings
from shared.storage import storage_errors, table_client
from shared.throttling.client_address import client_address
from shared.throttling.lockout import AddressLimits, AttemptWindow, RateLimit

__all__ = ["Action", "Admission", "RateLimiter"]

_PARTITION_PREFIX = "rate-"
#: Counter rows a process remembers (about 200 bytes each).
_REMEMBERED_ROWS = 10_000
#: Lost write races on one counter before the attempt is refused (only a flood loses so often).
_MAX_WRITE_ATTEMPTS = 50
_POOL_THREADS = 8

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


class Action(StrEnum):
    """What is being attempted; each has its own limit."""

    REGISTER = "register"
    LOGIN = "login"
    #: Requests that send mail.
    MAIL = "mail"


class Admission:
    """An attempt's place under the limit, possibly still being counted."""

    def __init__(self, action: Action, fail_open: bool, future: Future[int | None] | None = None) -> None:
        self._action = action
        self._fail_open = fail_open
        self._future = future

    def wait(self) -> None:
        """Return once the attempt is counted and admitted.

        :raises TooManyAttempts: the address is over its limit.
        :raises StorageUnavailable: the counter could not be reached (unless configured to fail open).
        """
        if self._future is None:
            return
        try:
            refused_for = self._future.result()
        except StorageUnavailable:
            action, fail_open = self._action, self._fail_open
            log_event("rate_limit_unavailable", logging.WARNING, action=action, fail_open=fail_open)
            if fail_open:
                return
            raise
        if refused_for is not None:
            raise TooManyAttempts(refused_for)


class RateLimiter:
    """Counts attempts per client address and refuses those over the limit."""

    def __init__(
        self,
        limits: AddressLimits,
        storage: StorageSettings,
        address_key: bytes,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limits = limits
        self._storage = storage
        self._address_key = address_key
        self._clock = clock
        self._told_address_unknown = False
        self._lock = threading.Lock()
        self._rows: collections.OrderedDict[str, tuple[str, AttemptWindow]] = collections.OrderedDict()

    def admit(self, action: Action, forwarded_for: str | None) -> Admission:
        """Start counting an attempt from the client that ``forwarded_for`` names.

        The count runs on a pool thread; do the attempt's own slow work (such
        as hashing) meanwhile, and call :meth:`Admission.wait` before acting
        on its outcome (storing, answering). An attempt with no usable
        address, or whose limit is 0, is admitted uncounted.

        :raises TooManyAttempts: at once, when this process knows the address is over its limit.
        """
        limit = self._limit(action)
        if not limit.enabled:
            return Admission(action, self._limits.fail_open)
        address = client_address(forwarded_for, trusted_proxies=self._limits.trusted_proxies)
        if address is None:
            if not self._told_address_unknown:  # once per process: a trait of the deployment
                self._told_address_unknown = True
                log_event("client_address_unknown", logging.WARNING, action=action)
            return Admission(action, self._limits.fail_open)
        digest = hmac.new(self._address_key, f"client-address:{address}".encode(), hashlib.sha256).hexdigest()
        client = digest[:16]
        row_key = f"rate:{action}:{digest[:32]}"
        remembered = self._remembered(row_key)
        now = self._clock()
        if remembered is not None and not remembered[1].admits(limit, now):
            raise TooManyAttempts(_throttled(action, client, remembered[1].retry_after(limit, now)))
        context = contextvars.copy_context()
        future = _thread_pool().submit(context.run, self._count, action, client, row_key, limit)
        return Admission(action, self._limits.fail_open, future)

    def admit_mail(self, kind: str, recipient: str, limit: RateLimit) -> bool:
        """Count one mail of ``kind`` to ``recipient``; return whether it is within ``limit``.

        Counted here and now (the mail function has nothing to do meanwhile),
        with the same rows and guarantees as client addresses; the table holds
        an HMAC of the address, not the address.

        :raises StorageUnavailable: the counter could not be reached.
        """
        if not limit.enabled:
            return True
        digest = hmac.new(self._address_key, f"recipient:{recipient}".encode(), hashlib.sha256).hexdigest()
        row_key = f"rate:mail-{kind}:{digest[:32]}"
        return self._count(f"mail-{kind}", digest[:16], row_key, limit) is None

    def _limit(self, action: Action) -> RateLimit:
        limits = self._limits
        by_action = {Action.REGISTER: limits.register, Action.LOGIN: limits.login, Action.MAIL: limits.mail}
        return by_action[action]

    def _count(self, action: str, client: str, row_key: str, limit: RateLimit) -> int | None:
        """Count one attempt; return ``None`` if admitted, else the seconds to wait."""
        partition = _PARTITION_PREFIX + row_key[-2:]
        remembered = self._remembered(row_key)
        with storage_errors("count attempt"):
            for attempt in range(_MAX_WRITE_ATTEMPTS):
                now = self._clock()
                if remembered is None:
                    window = AttemptWindow().after_attempt(limit, now)
                    try:
                        answer = self._table().create_entity(_entity(partition, row_key, window))
                    except ResourceExistsError:
                        remembered = self._read(partition, row_key)
                        continue
                    self._remember(row_key, answer["etag"], window)
                    return None
                etag, window = remembered
                if not window.admits(limit, now):
                    return _throttled(action, client, window.retry_after(limit, now))
                counted = window.after_attempt(limit, now)
                try:
                    answer = self._table().update_entity(
                        _entity(partition, row_key, counted),
                        mode=UpdateMode.REPLACE,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                except ResourceModifiedError:
                    # Another attempt counted first: after a short random pause, so that concurrent
                    # writers do not keep colliding, read again and count on top of it.
                    time.sleep(random.uniform(0, 0.002 * min(attempt, 10)))  # noqa: S311 - jitter
                    remembered = self._read(partition, row_key)
                    continue
                except ResourceNotFoundError:
                    remembered = None
                    continue
                self._remember(row_key, answer["etag"], counted)
                return None
        log_event("rate_limit_contended", logging.WARNING, action=action, client=client)
        return 1

    def _read(self, partition: str, row_key: str) -> tuple[str, AttemptWindow] | None:
        try:
            entity = self._table().get_entity(partition, row_key)
        except ResourceNotFoundError:
            return None
        start: datetime = entity["WindowStart"]
        window = AttemptWindow(
            start=int(start.timestamp()),
            count=int(entity["Attempts"]),
            previous=int(entity["PreviousAttempts"]),
        )
        etag = str(entity.metadata["etag"])
        self._remember(row_key, etag, window)
        return etag, window

    def _remembered(self, row_key: str) -> tuple[str, AttemptWindow] | None:
        with self._lock:
            return self._rows.get(row_key)

    def _remember(self, row_key: str, etag: str, window: AttemptWindow) -> None:
        with self._lock:
            self._rows[row_key] = (etag, window)
            self._rows.move_to_end(row_key)
            if len(self._rows) > _REMEMBERED_ROWS:
                self._rows.popitem(last=False)

    def _table(self) -> TableClient:
        return table_client(self._storage)


def _throttled(action: str, client: str, retry_after: int) -> int:
    log_event(
        "throttled",
        logging.WARNING,
        reason="address_rate_limit",
        action=action,
        client=client,
        retry_after=retry_after,
    )
    return retry_after


def _entity(partition: str, row_key: str, window: AttemptWindow) -> dict[str, Any]:
    return {
        "PartitionKey": partition,
        "RowKey": row_key,
        "WindowStart": datetime.fromtimestamp(window.start, UTC),
        "Attempts": window.count,
        "PreviousAttempts": window.previous,
    }


def _thread_pool() -> ThreadPoolExecutor:
    """The process's pool for counting attempts beside the request's own work."""
    global _pool  # noqa: PLW0603 - one pool per process, created on first use
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="rate-limit")
        return _pool
