"""Import accounts exported from Azure Mobile Services custom auth.

    python -m tools.import_accounts FILE [--format json|csv] [--map FIELD=COLUMN ...]
                                         [--workers N] [--dry-run] [--emails-verified]
    python -m tools.import_accounts --stats

FILE is an export of the legacy accounts table (``AccountData``): a JSON array
of objects or a CSV file with a header row. Each row needs ``id``, ``email``,
``password`` (the base64 PBKDF2 hash), ``salt`` (the base64 salt string) and
optionally ``createDate``; ``--map password=PasswordHash`` reads a field from
another column. Users keep their user ids (``Custom:<id>``) and their passwords;
each hash is upgraded to Argon2id at its owner's next login.

Storage settings come from the environment and ``local.settings.json`` (as for
the functions): ``ACCOUNTS_STORAGE_CONNECTION`` or ``AzureWebJobsStorage``, and
``ACCOUNTS_TABLE``.

The file is read as a stream: every row is validated and normalized first
(``--dry-run`` stops there and reports), and spooled to a temporary folder;
then ``--workers`` processes (default: one per core) write whole partitions
in transactions of up to 100 entities (see :mod:`tools.import_accounts.partitions`).
Memory stays bounded by what duplicate detection keeps: 16 bytes per email and
per id.

Re-running is safe and fast: an account already imported, or one that
registered or logged in since, is never overwritten, and what exists is read a
partition at a time. Bad rows are reported and skipped; they never stop the
import. A stopped import (Ctrl-C, a worker killed, storage unavailable) leaves
no half-written account; run the same command again to complete it. Ctrl-C
lets the partitions in progress finish, then stops. Exit status: 0 all rows
imported or already there, 1 some rows rejected, 2 some rows not written
(storage, or the import stopped) or the file could not be read.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import queue
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO, TypeVar

import ijson
from tqdm import tqdm

from shared.accounts.store import AccountStore
from shared.errors import ServiceError
from shared.settings import StorageSettings, load_storage_settings
from tools.devhost.local_settings import PROJECT_ROOT, apply_local_settings
from tools.import_accounts.partitions import (
    NOT_FINISHED,
    PartitionResult,
    SpoolWriter,
    account_task,
    alias_task,
    read_spool,
    start_worker,
    use_store,
)
from tools.import_accounts.rows import (
    FIELDS,
    Duplicates,
    LegacyAccount,
    RowError,
    parse_account,
    parse_batch,
    read_rows,
)

__all__ = ["Summary", "import_export", "main", "parse_account", "read_rows"]

#: Progress bars appear only for imports that last longer than this (seconds).
PROGRESS_BAR_DELAY = 0.5
#: Rows sent to a worker at a time for validation.
VALIDATION_BATCH_ROWS = 1000

#: Told of progress: the phase ("validating", "aliases" or "accounts") and how many more rows it finished.
ProgressListener = Callable[[str, int], None]


@dataclass
class Summary:
    """What an import did, row by row where it matters."""

    valid: int = 0
    imported: int = 0
    already_imported: int = 0
    email_taken: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def skipped_as_duplicate(self) -> int:
        return self.already_imported + len(self.email_taken)

    def add(self, result: PartitionResult) -> None:
        self.imported += result.imported
        self.already_imported += result.already_imported
        self.email_taken += result.email_taken
        self.rejected += result.rejected
        self.failed += result.failed

    def exit_status(self) -> int:
        if self.failed:
            return 2
        return 1 if self.rejected else 0

    def write(self, out: TextIO, *, dry_run: bool = False) -> None:
        for rows in (self.email_taken, self.rejected, self.failed):
            rows.sort()
        if dry_run:
            out.write(f"valid, to import or already there (dry run, nothing written): {self.valid}\n")
        else:
            out.write(f"imported: {self.imported}\n")
            out.write(
                f"skipped as duplicate: {self.skipped_as_duplicate} (already imported: "
                f"{self.already_imported}, email has another account: {len(self.email_taken)})\n"
            )
            for row, reason in self.email_taken:
                out.write(f"  row {row}: {reason}\n")
        out.write(f"rejected: {len(self.rejected)}\n")
        for row, reason in self.rejected:
            out.write(f"  row {row}: {reason}\n")
        if self.failed:
            out.write(f"failed, not written (re-run to complete): {len(self.failed)}\n")
            for row, reason in self.failed:
                out.write(f"  row {row}: {reason}\n")


def import_export(
    records: Iterable[Mapping[str, Any]],
    columns: Mapping[str, str],
    storage: StorageSettings,
    *,
    workers: int,
    emails_verified: bool = False,
    dry_run: bool = False,
    show_progress: bool = True,
    on_progress: ProgressListener | None = None,
) -> Summary:
    """Validate ``records`` and write the accounts to ``storage``; say what happened in the summary.

    Imported emails are marked unverified unless ``emails_verified``.

    :raises ValueError, ijson.JSONError, csv.Error, OSError: reading the
        records failed; raised before anything is written.
    """
    summary = Summary()
    with (
        tempfile.TemporaryDirectory(prefix="import-accounts-") as folder,
        _Workers(storage, workers, show_progress, on_progress) as pool,
    ):
        by_alias, by_account = Path(folder, "by-alias"), Path(folder, "by-account")
        with (
            SpoolWriter(by_alias) as spool,
            _Progress("validating", None, "row", show_progress, on_progress) as bar,
        ):
            for account in pool.validate(records, columns, summary, bar):
                spool.add(account.alias_partition, account)
                summary.valid += 1
        if dry_run or not summary.valid:
            return summary
        forwarded = 0
        with SpoolWriter(by_account) as spool:

            def forward(result: PartitionResult) -> None:
                nonlocal forwarded
                for account, alias_written in result.forwarded:
                    spool.add(account.partition, account, alias_written)
                forwarded += len(result.forwarded)
                result.forwarded.clear()

            pool.run(
                "aliases",
                summary.valid,
                [(alias_task, (path.name, path), [path]) for path in sorted(by_alias.iterdir())],
                summary,
                on_result=forward,
            )
        pool.run(
            "accounts",
            forwarded,
            [
                (account_task, (path.name, [path], emails_verified), [path])
                for path in (sorted(by_account.iterdir()) if by_account.exists() else [])
            ],
            summary,
        )
    return summary


#: One unit of work: the task function, its arguments, and the spool files holding its rows.
Task = tuple[Callable[..., PartitionResult], tuple[Any, ...], list[Path]]


class _Workers:
    """Runs the validation and the partition tasks in worker processes, or in this process for one worker.

    Stops handing out partitions at the first storage failure, a worker that
    died, or Ctrl-C (after the partitions in progress finish); later phases
    then do not run. The rows of every partition not finished are reported
    as failed, to be completed by a re-run.
    """

    def __init__(
        self,
        storage: StorageSettings,
        workers: int,
        show_progress: bool,
        on_progress: ProgressListener | None,
    ) -> None:
        self.storage = storage
        self.workers = workers
        self.show_progress = show_progress
        self.on_progress = on_progress
        self.stopped = False
        self._stack = ExitStack()
        self._executor: Executor | None = None
        self._progress_queue: Any = None

    def __enter__(self) -> _Workers:
        if self.workers <= 1:
            use_store(AccountStore(self.storage))
        else:
            context = get_context("spawn")
            self._progress_queue = context.Queue()
            self._executor = self._stack.enter_context(
                ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(self.storage, self._progress_queue),
                )
            )
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def validate(
        self,
        records: Iterable[Mapping[str, Any]],
        columns: Mapping[str, str],
        summary: Summary,
        bar: _Progress,
    ) -> Iterator[LegacyAccount]:
        """Parse every record (in the workers, a batch at a time); refuse duplicates here, in file order."""
        duplicates = Duplicates()
        batches = _batches(enumerate(records, start=1), VALIDATION_BATCH_ROWS)
        parse = functools.partial(parse_batch, columns=columns)
        if self._executor is None:
            parsed_batches: Iterable[list[LegacyAccount | tuple[int, str]]] = map(parse, batches)
        else:
            parsed_batches = _bounded_map(self._executor, parse, batches, in_flight=2 * self.workers)
        for parsed in parsed_batches:
            bar.update(len(parsed))
            for outcome in parsed:
                if isinstance(outcome, LegacyAccount):
                    try:
                        duplicates.add(outcome)
                    except RowError as error:
                        summary.rejected.append((outcome.row, str(error)))
                        continue
                    yield outcome
                else:
                    summary.rejected.append(outcome)

    def run(
        self,
        phase: str,
        total: int,
        tasks: list[Task],
        summary: Summary,
        on_result: Callable[[PartitionResult], object] = lambda result: None,
    ) -> None:
        """Run one phase's tasks; give each result to ``on_result`` as it comes, then to ``summary``."""

        def collect(result: PartitionResult) -> None:
            on_result(result)
            summary.add(result)

        with _Progress(phase, total, "account", self.show_progress, self.on_progress) as bar:
            if self.stopped:
                for _, _, spools in tasks:
                    collect(_not_finished(spools))
            elif self._executor is None:
                self._run_here(tasks, collect, bar)
            else:
                self._run_in_workers(self._executor, tasks, collect, bar)

    def _run_here(
        self, tasks: list[Task], collect: Callable[[PartitionResult], None], bar: _Progress
    ) -> None:
        for function, arguments, spools in tasks:
            if self.stopped:
                collect(_not_finished(spools))
                continue
            try:
                result = function(*arguments, progress=bar.update)
            except KeyboardInterrupt:
                self.stopped = True
                result = _not_finished(spools)
            self.stopped |= result.storage_failed
            collect(result)

    def _run_in_workers(
        self,
        executor: Executor,
        tasks: list[Task],
        collect: Callable[[PartitionResult], None],
        bar: _Progress,
    ) -> None:
        futures: dict[Future[PartitionResult], list[Path]] = {
            executor.submit(function, *arguments): spools for function, arguments, spools in tasks
        }
        pending = set(futures)
        while pending:
            try:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                print("\nstopping: the partitions in progress finish first", file=sys.stderr)
                self._stop(pending)
                continue
            self._drain(bar)
            for future in done:
                try:
                    result = future.result()
                except (BrokenProcessPool, CancelledError):
                    self._stop(pending)
                    result = _not_finished(futures[future])
                self.stopped |= result.storage_failed
                if self.stopped:
                    self._stop(pending)
                collect(result)
        self._drain(bar)

    def _stop(self, pending: set[Future[PartitionResult]]) -> None:
        self.stopped = True
        for future in pending:
            future.cancel()

    def _drain(self, bar: _Progress) -> None:
        while True:
            try:
                bar.update(self._progress_queue.get_nowait())
            except queue.Empty:
                return


def _start_worker(storage: StorageSettings, progress: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    start_worker(storage, progress)


def _not_finished(spools: list[Path]) -> PartitionResult:
    return PartitionResult(failed=[(account.row, NOT_FINISHED) for account, _ in read_spool(spools)])


T = TypeVar("T")
R = TypeVar("R")


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _bounded_map(
    executor: Executor, function: Callable[[T], R], items: Iterable[T], *, in_flight: int
) -> Iterator[R]:
    """``executor.map`` in order, but with at most ``in_flight`` items submitted and not yet taken."""
    waiting: deque[Future[R]] = deque()
    for item in items:
        waiting.append(executor.submit(function, item))
        if len(waiting) >= in_flight:
            yield waiting.popleft().result()
    while waiting:
        yield waiting.popleft().result()


class _Progress:
    """A progress bar on stderr (rate and time left), and the listener, told of the same counts."""

    def __init__(
        self, phase: str, total: int | None, unit: str, show: bool, listener: ProgressListener | None
    ) -> None:
        self.phase = phase
        self.listener = listener
        self.bar = tqdm(
            total=total, desc=phase, unit=unit, file=sys.stderr, disable=not show, delay=PROGRESS_BAR_DELAY
        )

    def update(self, count: int) -> None:
        self.bar.update(count)
        if self.listener is not None:
            self.listener(self.phase, count)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bar.close()


def _column_mapping(pairs: Sequence[str]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for pair in pairs:
        name, separator, column = pair.partition("=")
        if not separator or name not in FIELDS or not column:
            raise argparse.ArgumentTypeError(
                f"--map takes FIELD=COLUMN with FIELD one of {', '.join(FIELDS)}"
            )
        columns[name] = column
    return columns


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.import_accounts",
        description="Import accounts exported from Azure Mobile Services custom auth.",
    )
    parser.add_argument("file", nargs="?", type=Path, help="the export: a JSON array or a CSV file")
    parser.add_argument("--format", choices=("json", "csv"), help="default: from the file name's ending")
    parser.add_argument(
        "--map", action="append", default=[], metavar="FIELD=COLUMN", help="read FIELD from COLUMN"
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=len(os.sched_getaffinity(0)),
        help="worker processes, each writing whole partitions (default: one per core)",
    )
    parser.add_argument("--dry-run", action="store_true", help="validate every row and report; write nothing")
    parser.add_argument("--stats", action="store_true", help="count accounts still holding legacy hashes")
    parser.add_argument(
        "--emails-verified",
        action="store_true",
        help="mark imported emails as verified (the old app proved them); default: unverified",
    )
    parser.add_argument("--settings", type=Path, default=PROJECT_ROOT / "local.settings.json")
    args = parser.parse_args(argv)
    if args.file is None and not args.stats:
        parser.error("give a FILE to import, or --stats")
    try:
        columns = _column_mapping(args.map)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))

    apply_local_settings(args.settings, os.environ)
    try:
        storage = load_storage_settings(os.environ)
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    status = 0
    if args.file is not None:
        file_format = args.format or ("csv" if args.file.suffix.lower() == ".csv" else "json")
        try:
            summary = import_export(
                read_rows(args.file, file_format),
                columns,
                storage,
                workers=args.workers,
                emails_verified=args.emails_verified,
                dry_run=args.dry_run,
            )
        except (OSError, ValueError, csv.Error, ijson.JSONError) as error:
            print(f"error: cannot read {args.file}: {error} (nothing was written)", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\nstopped while reading the file: nothing was written", file=sys.stderr)
            return 2
        summary.write(sys.stdout, dry_run=args.dry_run)
        status = summary.exit_status()
    if args.stats:
        try:
            total, legacy = AccountStore(storage).hash_statistics()
        except ServiceError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        share = f" ({100 * legacy / total:.1f} %)" if total else ""
        print(f"accounts: {total}\nwith Mobile Services hashes, not yet upgraded: {legacy}{share}")
    return status


if __name__ == "__main__":
    sys.exit(main())
