"""The scheduled cleanup: deletes the rows of the accounts table that would otherwise pile up for ever.

``cleanup/`` runs :func:`run_cleanup` on ``AUTH_CLEANUP_SCHEDULE`` (hourly in
the example settings and the infrastructure). Each kind of row is swept by a
query of its own key range, filtered by the service where it can be; ``now``
is when the run started:

=======================  ====================================  =======================================
kind                     rows                                  dead (deleted) when
=======================  ====================================  =======================================
``counters``             ``rate:<action>:<digest>`` in         ``WindowStart`` + twice the window
                         ``rate-XX``                           ``<= now``: the limiter reads a row's
                                                               window and the one after it
                                                               (:class:`AttemptWindow`), no longer
``placeholders``         ``email:<email>`` without ``UserId``  ``LockedUntil <= now`` and
                                                               ``FailureWindowStart + 1 h <= now``:
                                                               the record refuses nothing any more
                                                               (:meth:`LoginThrottle.refused_until`)
``codes``                ``code:<purpose>:<email>``            ``ExpiresAt <= now``: refused anyway
``passkey_challenges``   ``challenge:<digest>``, ``pkch-XX``   ``ExpiresAt <= now``: refused anyway
``unverified_accounts``  ``user:<user id>``, with the login    under ``AUTH_REQUIRE_VERIFIED_EMAIL``
                         row, second factor, codes and alias   only, when :func:`_abandoned` says so
                         (as :meth:`AccountStore.delete`)
=======================  ====================================  =======================================

The window of a counter is that of its action's limit now (``AUTH_RATE_LIMIT_*``,
``AUTH_MAIL_LIMIT`` for ``mail-<kind>``), since that is how the limiter reads
it now. An action whose limit is off (``0``) or which this code does not know
(a newer version's, during a rolling deployment) is read by no one at the
moment; its rows get a window (:class:`CounterWindows`) of at least a day,
and at least the longest window configured. So a limit turned off and on
again within the day keeps its counts, a newer version's counters outlive any
window it is likely to use, and deleting one too early costs no more than a
client's count starting afresh, as after a signing-key rotation.

Unverified accounts are deleted only if they registered after the cleanup
first saw ``AUTH_REQUIRE_VERIFIED_EMAIL`` on (noted in the state row, below;
forgotten when it sees it off): accounts from before, which their users may
still verify whenever they come back, are never deleted by turning it on.

Sessions need no sweep: they are properties of the account row, capped by
``AUTH_MAX_SESSIONS``, and ended ones are dropped whenever the row is
rewritten. Rows of their own for sessions would get a sweep in :func:`_sweeps`.

How rows go: every delete is conditional on the ETag read with the row
(If-Match), in transactions of up to 100 rows of one partition; a row changed
since the read (a login just counted a failure on a placeholder, a client
was just counted, a code was just issued again) or already gone (another
instance ran at the same time) is left out, not retried, and not an error. So
two runs at once delete each row once. A run stops when :data:`RUN_BUDGET`
is spent, and notes where in the state row (PartitionKey ``cleanup``, RowKey
``state``: ``ResumeSweep``, ``ResumePartitionKey``, ``ResumeRowKey``,
``VerificationRequiredSince``); the next run carries on from there. Failing
storage ends the run and raises (the host logs the failed invocation; the
next run tries again).
Each run logs ``event=cleanup_finished`` with ``deleted_<kind>=N``, ``changed``
(dead rows changed or gone before their delete), ``seconds`` and
``complete`` (every sweep reached its end).

This module is over 400 lines because of this description (the table of what
is swept, and why each rule is safe); its code, the run and its resumable
state, is under 400 and reads top to bottom. Which rows are dead and how they
are deleted is :mod:`shared.operations.dead_rows`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, UpdateMode

from shared.accounts.store import AccountStore, partition_for_user_id
from shared.errors import ConflictError
from shared.events import log_event
from shared.operations.dead_rows import (
    CounterWindows,
    DeadRow,
    code_is_dead,
    dead_row,
    delete_unchanged,
    placeholder_is_dead,
    transactions,
)
from shared.settings import Settings
from shared.storage import storage_errors, table_client
from shared.throttling.lockout import HOUR
from shared.throttling.store import NO_FAILURES

__all__ = ["RUN_BUDGET", "CleanupReport", "DeadRow", "delete_unchanged", "run_cleanup"]

#: A run stops after this long, well inside the host's 5-minute default function timeout.
RUN_BUDGET = timedelta(minutes=4)
#: Rows a query page returns at most (the service's own maximum).
PAGE_SIZE = 1000
#: Transactions (each of its own partition) sent at once.
_PARALLEL_TRANSACTIONS = 8
_STATE_KEYS = {"PartitionKey": "cleanup", "RowKey": "state"}
#: Stored for "not set" (a merge cannot remove a property), as in shared.accounts.store.
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CleanupReport:
    """What one run did."""

    deleted: Mapping[str, int]
    #: Rows found dead that changed or went before their delete (left alone).
    changed: int
    #: Every sweep reached its end (else the budget ran out; the next run carries on).
    complete: bool
    seconds: float


@dataclass
class _Run:
    """One run's table, clock and tally."""

    table: TableClient
    settings: Settings
    now: datetime
    budget: float
    clock: Callable[[], float]
    pool: ThreadPoolExecutor
    started: float
    deleted: Counter[str] = field(default_factory=Counter)
    changed: int = 0

    def out_of_time(self) -> bool:
        return self.clock() - self.started >= self.budget


@dataclass(frozen=True, slots=True)
class _Sweep:
    """One kind of row: its query, and what deletes the dead rows of a page of it."""

    kind: str
    query: str
    parameters: Mapping[str, Any]
    select: tuple[str, ...]
    #: Deletes the dead rows of one page; returns ``False`` if the budget ran out first.
    clean: Callable[[_Run, list[TableEntity]], bool]


@dataclass(frozen=True, slots=True)
class _State:
    """The state row: where the last run stopped, and since when verification has been required."""

    sweep: str | None = None
    token: dict[str, str] | None = None
    verification_required_since: datetime | None = None


def run_cleanup(
    settings: Settings,
    *,
    now: datetime | None = None,
    budget: timedelta = RUN_BUDGET,
    clock: Callable[[], float] = time.monotonic,
    past_due: bool = False,
) -> CleanupReport:
    """Delete the dead rows of every kind (see the module's docstring), within ``budget``.

    ``now`` decides what is dead (default: the time now); ``clock`` measures the budget.

    :raises StorageUnavailable: storage failed; the run ended there (and was logged).
    """
    started = clock()
    deleted: Counter[str] = Counter()
    run: _Run | None = None
    complete = False
    error: str | None = None
    try:
        table = table_client(settings.storage)
        with ThreadPoolExecutor(_PARALLEL_TRANSACTIONS, thread_name_prefix="cleanup") as pool:
            when = now or datetime.now(UTC)
            run = _Run(table, settings, when, budget.total_seconds(), clock, pool, started, deleted)
            complete = _sweep_all(run)
    except Exception as failure:
        error = type(failure).__name__
        raise
    finally:
        changed = run.changed if run is not None else 0
        report = CleanupReport(dict(deleted), changed, complete, round(clock() - started, 3))
        log_event(
            "cleanup_finished",
            logging.WARNING if error else logging.INFO,
            deleted_counters=deleted["counters"],
            deleted_placeholders=deleted["placeholders"],
            cleared_failure_records=deleted["failure_records"],
            deleted_codes=deleted["codes"],
            deleted_passkey_challenges=deleted["passkey_challenges"],
            deleted_unverified_accounts=deleted["unverified_accounts"],
            changed=changed,
            seconds=report.seconds,
            complete=str(complete).lower(),
            past_due="true" if past_due else None,
            error=error,
        )
    return report


def _sweep_all(run: _Run) -> bool:
    """Run the sweeps, from where the last run stopped; return whether all reached their end."""
    state = _read_state(run.table)
    since = _verification_required_since(run, state)
    sweeps = _sweeps(run, since)
    start = next((i for i, sweep in enumerate(sweeps) if sweep.kind == state.sweep), 0)
    ordered = sweeps[start:] + sweeps[:start]
    for index, sweep in enumerate(ordered):
        token = state.token if index == 0 and sweep.kind == state.sweep else None
        stopped_at = _sweep(run, sweep, token)
        if stopped_at is not None:
            _write_state(run.table, sweep=sweep.kind, token=stopped_at or None)
            return False
    if state.sweep is not None:
        _write_state(run.table, sweep=None, token=None)
    return True


def _sweep(run: _Run, sweep: _Sweep, token: dict[str, str] | None) -> dict[str, str] | None:
    """Page through ``sweep`` from ``token``, cleaning each page.

    :returns: ``None`` at its end; else the token of the page to carry on from (``{}``: the first).
    """
    query = run.table.query_entities(
        sweep.query, parameters=dict(sweep.parameters), select=list(sweep.select), results_per_page=PAGE_SIZE
    )
    pages: Any = query.by_page(continuation_token=token)  # type: ignore[arg-type]  # a dict, despite the stub
    resuming = token is not None
    while True:
        page_token: dict[str, str] = pages.continuation_token or {}
        if run.out_of_time():
            return page_token
        with storage_errors(f"list {sweep.kind}"):
            try:
                entities = list(next(pages))
            except StopIteration:
                return None
            except HttpResponseError as error:
                if not resuming or error.status_code != 400:
                    raise
                # A position the service refuses (noted by another version?): this sweep starts again.
                pages, resuming = query.by_page(), False
                continue
        resuming = False
        if not sweep.clean(run, entities):
            return page_token


def _sweeps(run: _Run, verification_required_since: datetime | None) -> list[_Sweep]:
    """Every sweep this run makes, in order."""
    now = run.now
    accounts = "PartitionKey ge 'acct-' and PartitionKey lt 'acct.'"
    windows = CounterWindows(run.settings)
    sweeps = [
        _Sweep(
            "counters",
            "PartitionKey ge 'rate-' and PartitionKey lt 'rate.' and WindowStart le @cutoff",
            {"cutoff": now - 2 * windows.shortest},
            ("PartitionKey", "RowKey", "WindowStart"),
            lambda r, page: _delete_dead(r, "counters", page, windows.is_dead),
        ),
        _Sweep(
            "placeholders",
            f"{accounts} and RowKey ge 'email:' and RowKey lt 'email;'"
            " and LockedUntil le @now and FailureWindowStart le @window",
            {"now": now, "window": now - HOUR},
            ("PartitionKey", "RowKey", "UserId", "LockedUntil", "FailureWindowStart", "FailedLogins"),
            lambda r, page: (
                _reset_stale_failures(r, page) and _delete_dead(r, "placeholders", page, placeholder_is_dead)
            ),
        ),
        _Sweep(
            "codes",
            f"{accounts} and RowKey ge 'code:' and RowKey lt 'code;' and ExpiresAt le @now",
            {"now": now},
            ("PartitionKey", "RowKey", "ExpiresAt"),
            lambda r, page: _delete_dead(r, "codes", page, code_is_dead),
        ),
        _Sweep(
            "passkey_challenges",
            "PartitionKey ge 'pkch-' and PartitionKey lt 'pkch.' and ExpiresAt le @now",
            {"now": now},
            ("PartitionKey", "RowKey", "ExpiresAt"),
            lambda r, page: _delete_dead(r, "passkey_challenges", page, code_is_dead),
        ),
        # Sessions are properties of the account row (see the module's docstring): no sweep.
    ]
    since, cutoff = verification_required_since, now - run.settings.cleanup.unverified_max_age
    if since is not None and since <= cutoff:
        sweeps.append(
            _Sweep(
                "unverified_accounts",
                f"{accounts} and RowKey ge 'user:' and RowKey lt 'user;'"
                " and CreatedAt ge @since and CreatedAt le @cutoff",
                {"since": since, "cutoff": cutoff},
                ("PartitionKey", "RowKey", "EmailVerified", "CreatedAt", "MovingTo", "MovedFrom", "Disabled"),
                lambda r, page: _delete_abandoned_accounts(r, page, since, cutoff),
            )
        )
    return sweeps


def _delete_dead(
    run: _Run, kind: str, page: list[TableEntity], is_dead: Callable[[TableEntity, datetime], bool]
) -> bool:
    """Delete the rows of ``page`` that ``is_dead`` calls dead, a transaction per partition.

    Transactions of different partitions go :data:`_PARALLEL_TRANSACTIONS` at a
    time (dead rows spread over all partitions: counters, failure records).
    """
    dead = [dead_row(entity) for entity in page if is_dead(entity, run.now)]
    chunks = list(transactions(dead))

    def delete(chunk: list[DeadRow]) -> int | None:
        return None if run.out_of_time() else delete_unchanged(run.table, chunk)

    finished = True
    for chunk, deleted in zip(chunks, run.pool.map(delete, chunks), strict=True):
        if deleted is None:
            finished = False
            continue
        run.deleted[kind] += deleted
        run.changed += len(chunk) - deleted
    return finished


def _reset_stale_failures(run: _Run, page: list[TableEntity]) -> bool:
    """Clear the failure records of accounts that the placeholders' rule would delete if they had none.

    A placeholder's record goes with its row; an account's must go too, in the
    same run, or whether one more failure locks an email would tell, an hour
    later, whether it has an account. Each write is guarded by the row's ETag.
    """
    cleared = NO_FAILURES
    for entity in page:
        if not entity.get("UserId") or not entity.get("FailedLogins"):
            continue
        if run.out_of_time():
            return False
        keys = {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"]}
        try:
            run.table.update_entity(
                keys | cleared,
                mode=UpdateMode.MERGE,
                etag=entity.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            run.deleted["failure_records"] += 1
        except (ResourceModifiedError, ResourceNotFoundError):
            run.changed += 1  # changed since read (a login counted a failure, or succeeded)
    return True


# Unverified accounts.


def _verification_required_since(run: _Run, state: _State) -> datetime | None:
    """Since when (as far as the cleanup saw) verified emails have been required; ``None``: they are not.

    Recorded by the first run that finds ``AUTH_REQUIRE_VERIFIED_EMAIL`` on,
    and forgotten by the first that finds it off, so that only accounts that
    registered under the requirement are ever deleted (see :func:`_abandoned`).
    """
    if not run.settings.mail.require_verified:
        if state.verification_required_since is not None:
            _merge_state(run.table, {"VerificationRequiredSince": _NEVER})
        return None
    if state.verification_required_since is None:
        _merge_state(run.table, {"VerificationRequiredSince": run.now})
        return run.now
    return state.verification_required_since


def _abandoned(user_id: str, entity: Mapping[str, Any], since: datetime, cutoff: datetime) -> bool:
    """Whether the account row of ``user_id`` is a sign-up never finished, old enough to delete.

    Its email is not verified (``EmailVerified`` false or missing); it
    registered while verification was required (after ``since``), so it never
    had a token, and longer ago than ``AUTH_UNVERIFIED_MAX_DAYS`` (before
    ``cutoff``). Never an account in the middle of an email change, one an
    operator disabled (theirs to decide), or an account imported from Mobile
    Services (a ``Custom:`` user id: its users may verify whenever they come
    back; README, "Requiring a verified email"). Accounts from before
    verification was required are kept for the same reason.
    """
    created_at: datetime | None = entity.get("CreatedAt")
    return (
        partition_for_user_id(user_id) is not None  # one of ours, not imported
        and not entity.get("EmailVerified")
        and created_at is not None
        and since <= created_at <= cutoff
        and not entity.get("MovingTo")
        and not entity.get("MovedFrom")
        and not entity.get("Disabled")
    )


def _delete_abandoned_accounts(run: _Run, page: list[TableEntity], since: datetime, cutoff: datetime) -> bool:
    """Delete each abandoned account of ``page``, reading it again first."""
    store = AccountStore(run.settings.storage)
    for entity in page:
        if run.out_of_time():
            return False
        user_id = str(entity["RowKey"]).removeprefix("user:")
        if _abandoned(user_id, entity, since, cutoff):
            deleted = _delete_account(store, user_id, since, cutoff)
            run.deleted["unverified_accounts"] += deleted
            run.changed += 1 - deleted
    return True


def _delete_account(store: AccountStore, user_id: str, since: datetime, cutoff: datetime) -> int:
    """Delete an abandoned account if both its rows are unchanged since this read; return 1 if it went.

    :raises StorageUnavailable: storage failed.
    """
    account = store.account(user_id)
    if account is None or not _abandoned(user_id, account.raw, since, cutoff):
        return 0
    credentials = store.credentials(account.email)
    if credentials is None or credentials.user_id != user_id or credentials.in_move:
        return 0
    if credentials.email_verified:
        return 0
    try:
        store.delete(account, credentials)  # both rows If-Match, with its second factor, codes and alias
    except ConflictError:
        return 0  # verified, logged in or changed meanwhile
    log_event("account_deleted", user_id=user_id, reason="unverified")
    return 1


# The state row.


def _read_state(table: TableClient) -> _State:
    with storage_errors("read cleanup state"):
        try:
            entity = table.get_entity(_STATE_KEYS["PartitionKey"], _STATE_KEYS["RowKey"])
        except ResourceNotFoundError:
            return _State()
    since: datetime | None = entity.get("VerificationRequiredSince")
    partition, row = str(entity.get("ResumePartitionKey") or ""), str(entity.get("ResumeRowKey") or "")
    return _State(
        sweep=entity.get("ResumeSweep") or None,
        token={"PartitionKey": partition, "RowKey": row} if partition or row else None,
        verification_required_since=since if since is not None and since > _NEVER else None,
    )


def _write_state(table: TableClient, *, sweep: str | None, token: dict[str, str] | None) -> None:
    """Note where the next run carries on (``None``: from the start)."""
    token = token or {}
    _merge_state(
        table,
        {
            "ResumeSweep": sweep or "",
            "ResumePartitionKey": token.get("PartitionKey") or "",
            "ResumeRowKey": token.get("RowKey") or "",
        },
    )


def _merge_state(table: TableClient, changes: Mapping[str, Any]) -> None:
    """Merge ``changes`` into the state row (the last writer of two runs at once wins: either is right)."""
    with storage_errors("write cleanup state"):
        table.upsert_entity({**_STATE_KEYS, **changes}, mode=UpdateMode.MERGE)
