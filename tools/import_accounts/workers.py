"""Where the import's work runs: worker processes (or this process, for one worker), and how it stops.

Validation goes to the workers a batch of rows at a time; the partition tasks
one spooled partition at a time. The first storage failure, a worker that
died, or Ctrl-C stops the handing out of partitions; every partition not
finished is reported as failed, for a re-run to complete.
"""

from __future__ import annotations

import functools
import queue
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, CancelledError, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from itertools import islice
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

from shared.accounts.store import AccountStore
from shared.settings import StorageSettings
from tools.import_accounts.partitions import (
    NOT_FINISHED,
    PartitionResult,
    read_spool,
    start_worker,
    use_store,
)
from tools.import_accounts.progress import Progress, ProgressListener
from tools.import_accounts.rows import Duplicates, LegacyAccount, RowError, parse_batch
from tools.import_accounts.summary import Summary

#: Rows sent to a worker at a time for validation.
VALIDATION_BATCH_ROWS = 1000

#: One unit of work: the task function, its arguments, and the spool files holding its rows.
Task = tuple[Callable[..., PartitionResult], tuple[Any, ...], list[Path]]


class Workers:
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

    def __enter__(self) -> Workers:
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
        bar: Progress,
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

        with Progress(phase, total, "account", self.show_progress, self.on_progress) as bar:
            if self.stopped:
                for _, _, spools in tasks:
                    collect(_not_finished(spools))
            elif self._executor is None:
                self._run_here(tasks, collect, bar)
            else:
                self._run_in_workers(self._executor, tasks, collect, bar)

    def _run_here(self, tasks: list[Task], collect: Callable[[PartitionResult], None], bar: Progress) -> None:
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
        bar: Progress,
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

    def _drain(self, bar: Progress) -> None:
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
