"""The importer's storage work, one whole partition per task, run in worker processes.

Validated accounts travel between the phases in spool files on disk, so the
importer's memory does not grow with the export:

1. :func:`alias_phase`, one task per alias partition (``alias-xx``, by user
   id): read the aliases there, refuse a user id imported before with another
   email, write the missing aliases (100 per transaction), and pass each
   account on, spooled under its account partition.
2. :func:`account_phase`, one task per account partition (``acct-xx``, by
   email): read the login rows there, skip accounts already imported or whose
   email has another account, and create the rest (50 accounts, 100 rows, per
   transaction).

The alias is written before the account, and both rows of an account are
written in one transaction: a stopped import leaves at most aliases without
accounts, which the next run completes; never half an account.
"""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from typing import IO, TypeVar

from shared.accounts.store import AccountStore, ImportOutcome
from shared.errors import ServiceError, StorageUnavailable
from shared.settings import StorageSettings
from tools.import_accounts.rows import LegacyAccount

ACCOUNTS_PER_TRANSACTION = 50  # two rows each: 100 operations, the most one transaction takes
ALIASES_PER_TRANSACTION = 100
#: The reason shown for rows of a partition that was not finished (storage went away, or the import stopped).
NOT_FINISHED = "not written: the import stopped before this row (re-run to complete)"
STORAGE_UNAVAILABLE = "storage_unavailable"

Progress = Callable[[int], None]


@dataclass
class PartitionResult:
    """What one task did, row by row where it matters (merged into the import's summary)."""

    imported: int = 0
    already_imported: int = 0
    email_taken: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: Accounts passed on to the next phase, each with whether this run wrote its alias.
    forwarded: list[tuple[LegacyAccount, bool]] = field(default_factory=list)

    @property
    def storage_failed(self) -> bool:
        return any(reason == STORAGE_UNAVAILABLE for _, reason in self.failed)

    def record(self, account: LegacyAccount, outcome: ImportOutcome | ServiceError) -> None:
        if outcome is ImportOutcome.IMPORTED:
            self.imported += 1
        elif outcome is ImportOutcome.ALREADY_IMPORTED:
            self.already_imported += 1
        elif outcome is ImportOutcome.EMAIL_TAKEN:
            self.email_taken.append((account.row, f"{account.email} already has another account"))
        elif outcome is ImportOutcome.USER_ID_TAKEN:
            self.rejected.append((account.row, f"{account.user_id} was imported with another email"))
        else:
            self.failed.append((account.row, STORAGE_UNAVAILABLE))


# The spool: pickled records appended to one file per partition.


class SpoolWriter:
    """Appends records to one file per key under ``directory`` (``<key><suffix>``).

    Records are plain tuples: pickling a named tuple or a date costs ten times more.
    """

    def __init__(self, directory: Path, suffix: str = "") -> None:
        self.directory = directory
        self.suffix = suffix
        self._files: dict[str, IO[bytes]] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, key: str, account: LegacyAccount, alias_written: bool = False) -> None:
        """Append ``account`` to the file of ``key``, with whether this run wrote its alias."""
        stream = self._files.get(key)
        if stream is None:
            stream = self._files[key] = (self.directory / f"{key}{self.suffix}").open("ab")
        pickle.dump((tuple(account), alias_written), stream, protocol=pickle.HIGHEST_PROTOCOL)

    def close(self) -> None:
        for stream in self._files.values():
            stream.close()
        self._files.clear()

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_spool(paths: list[Path]) -> Iterator[tuple[LegacyAccount, bool]]:
    """Yield every account of the spool files ``paths``, file by file, with its alias flag."""
    for path in paths:
        with path.open("rb") as stream:
            while True:
                try:
                    record, alias_written = pickle.load(stream)  # noqa: S301 - this import's own 0700 folder
                except EOFError:
                    break
                yield LegacyAccount._make(record), alias_written


# The two phases, each on one partition.


def alias_phase(
    store: AccountStore,
    alias_partition: str,
    accounts: list[LegacyAccount],
    progress: Progress,
) -> PartitionResult:
    """Check and write the aliases of ``accounts`` (all of ``alias_partition``).

    The accounts whose alias is now in place are in ``forwarded``, for
    :func:`account_phase`, each with whether this run wrote its alias.
    """
    result = PartitionResult()

    def forward(account: LegacyAccount, alias_written: bool) -> None:
        result.forwarded.append((account, alias_written))

    try:
        aliased = store.existing_aliases(alias_partition)
    except ServiceError:
        for account in accounts:
            result.failed.append((account.row, STORAGE_UNAVAILABLE))
        progress(len(accounts))
        return result
    to_write: list[LegacyAccount] = []
    for account in accounts:
        email = aliased.get(account.user_id)
        if email is None:
            to_write.append(account)
        elif email != account.email:
            result.record(account, ImportOutcome.USER_ID_TAKEN)
        else:
            forward(account, False)  # already imported, or an import that stopped after the alias
    progress(len(accounts) - len(to_write))
    for chunk in chunks(to_write, ALIASES_PER_TRANSACTION):
        try:
            if result.storage_failed:  # storage is away: do not wait on it once per transaction
                raise StorageUnavailable()
            store.put_aliases([(account.user_id, account.email) for account in chunk])
        except ServiceError:
            result.failed += [(account.row, STORAGE_UNAVAILABLE) for account in chunk]
        else:
            for account in chunk:
                forward(account, True)
        progress(len(chunk))
    return result


def account_phase(
    store: AccountStore,
    partition: str,
    entries: list[tuple[LegacyAccount, bool]],
    *,
    emails_verified: bool,
    progress: Progress,
) -> PartitionResult:
    """Create the accounts of ``entries`` (all of ``partition``) that do not exist yet.

    Each entry is an account and whether this run wrote its alias. An account
    whose email has another account is skipped, and the alias this run wrote
    for it is removed again. A transaction that meets a row written since the
    read (a registration during the import) falls back to importing its
    accounts one by one, which never overwrites.
    """
    result = PartitionResult()
    entries = sorted(entries, key=lambda entry: entry[0].row)
    try:
        owners = store.existing_logins(partition)
    except ServiceError:
        result.failed += [(account.row, STORAGE_UNAVAILABLE) for account, _ in entries]
        progress(len(entries))
        return result
    to_create: list[LegacyAccount] = []
    for account, alias_written in entries:
        owner = owners.get(account.email)
        if owner == account.user_id:
            result.record(account, ImportOutcome.ALREADY_IMPORTED)
        elif owner is not None:
            result.record(account, ImportOutcome.EMAIL_TAKEN)
            if alias_written:
                with contextlib.suppress(ServiceError):  # a stale alias of an id never imported: harmless
                    store.delete_alias(account.user_id)
        else:
            to_create.append(account)
    progress(len(entries) - len(to_create))
    for chunk in chunks(to_create, ACCOUNTS_PER_TRANSACTION):
        if result.storage_failed:  # storage is away: do not wait on it once per transaction
            outcomes: list[ImportOutcome | ServiceError] = [StorageUnavailable()] * len(chunk)
        else:
            outcomes = _create(store, chunk, emails_verified)
        for account, outcome in zip(chunk, outcomes, strict=True):
            result.record(account, outcome)
        progress(len(chunk))
    return result


def _create(
    store: AccountStore, chunk: list[LegacyAccount], emails_verified: bool
) -> list[ImportOutcome | ServiceError]:
    rows = [(a.user_id, a.email, a.stored_hash, a.created_at) for a in chunk]
    try:
        if store.create_imported(rows, email_verified=emails_verified):
            return [ImportOutcome.IMPORTED] * len(chunk)
    except ServiceError as error:
        return [error] * len(chunk)
    outcomes: list[ImportOutcome | ServiceError] = []
    for a in chunk:
        try:
            outcomes.append(
                store.import_legacy(
                    a.user_id, a.email, a.stored_hash, a.created_at, email_verified=emails_verified
                )
            )
        except ServiceError as error:
            outcomes.append(error)
    return outcomes


# Running the phases in a worker process: one store per process, progress through a queue.

_worker_store: AccountStore | None = None
_worker_progress: Queue[int] | None = None


def start_worker(settings: StorageSettings, progress: Queue[int] | None) -> None:
    """Process initializer: the storage client is created once per worker, as in a function app."""
    global _worker_store, _worker_progress  # noqa: PLW0603 - one store per worker process
    _worker_store = AccountStore(settings)
    _worker_progress = progress


def use_store(store: AccountStore) -> None:
    """Run tasks in this process with ``store`` (``--workers 1``, and tests)."""
    global _worker_store, _worker_progress
    _worker_store, _worker_progress = store, None


def alias_task(alias_partition: str, spool: Path, progress: Progress | None = None) -> PartitionResult:
    """Run :func:`alias_phase` on one spooled alias partition."""
    accounts = [account for account, _ in read_spool([spool])]
    return alias_phase(_store(), alias_partition, accounts, progress or _report)


def account_task(
    partition: str, spools: list[Path], emails_verified: bool, progress: Progress | None = None
) -> PartitionResult:
    """Run :func:`account_phase` on one account partition, from every spool file forwarded to it."""
    entries = list(read_spool(spools))
    return account_phase(
        _store(), partition, entries, emails_verified=emails_verified, progress=progress or _report
    )


def _store() -> AccountStore:
    if _worker_store is None:
        raise RuntimeError("start_worker() or use_store() first")
    return _worker_store


def _report(count: int) -> None:
    if _worker_progress is not None and count:
        _worker_progress.put(count)


T = TypeVar("T")


def chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
