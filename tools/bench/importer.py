"""The importer's figures for ``make bench``: throughput against a bare writer, and memory on big files.

Each writer imports the same accounts into a fresh Azurite of its own (in
memory), one after the other in the same run:

- the bare writer: ``azure-data-tables`` alone, sending the accounts' entities
  (login row, account row and alias row: three per account) in transactions
  of 100, one after another, built before the clock starts;
- the importer: ``python -m tools.import_accounts`` as an operator runs it,
  from the export file to the summary (reading, validating, spooling, reading
  what exists, writing), timed end to end.

Memory: the importer's resident memory, summed over its worker processes and
sampled every 50 ms, on an export of ``--memory-rows`` rows (a dry run, which
reads, validates and spools every row: the part that grows with the file) and
during the real import above.

    python -m tools.bench.importer [--accounts 20000] [--memory-rows 1000000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from azure.data.tables import TableClient

from shared.accounts.store import account_rows, alias_keys, partition_for_email
from shared.settings import StorageSettings
from tools.bench.measuring import status_kib
from tools.bench.report import Report
from tools.emulators.azurite import PROJECT_ROOT, Azurite
from tools.import_accounts import command as import_accounts
from tools.import_accounts.partitions import NOT_FINISHED

#: The rate the importer must reach, as a multiple of the bare serial writer's.
TARGET_RATIO = 1.2
#: The importer's peak resident memory on a 1,000,000-row export must stay under this.
MEMORY_LIMIT_MIB = 1024
_ENTITIES_PER_TRANSACTION = 100
_SALT_AND_HASH_BYTES = 32


@dataclass(frozen=True)
class Rate:
    """Accounts per second over a whole run, and over its first and last tenth."""

    accounts: int
    seconds: float
    first_tenth: float
    last_tenth: float

    @property
    def per_second(self) -> float:
        return self.accounts / self.seconds

    @property
    def change(self) -> float:
        """Last tenth's rate over the first tenth's."""
        return self.last_tenth / self.first_tenth


def export_rows(count: int) -> Iterator[dict[str, Any]]:
    """Rows of a Mobile Services export, with random (well-formed) salts and hashes."""
    for index in range(count):
        yield {
            "id": f"bench-{index:08d}",
            "email": f"user{index}@bench.example.com",
            "password": base64.b64encode(secrets.token_bytes(_SALT_AND_HASH_BYTES)).decode(),
            "salt": base64.b64encode(secrets.token_bytes(_SALT_AND_HASH_BYTES)).decode(),
            "createDate": "2015-03-04T05:06:07Z",
        }


def write_export(path: Path, count: int) -> Path:
    """Write a JSON array export of ``count`` rows, row by row (never the whole list in memory)."""
    with path.open("w", encoding="utf-8") as stream:
        stream.write("[")
        for index, row in enumerate(export_rows(count)):
            stream.write(("," if index else "") + json.dumps(row) + "\n")
        stream.write("]")
    return path


def bare_writer(azurite: Azurite, count: int) -> Rate:
    """The SDK alone: the same three entities per account, 100 per transaction, one after another."""
    from shared.accounts.mobile_services import legacy_stored_hash  # noqa: PLC0415 - only to build the entities

    table = TableClient.from_connection_string(azurite.connection_string, "BareWriter")
    table.create_table()
    created = datetime(2015, 3, 4, 5, 6, 7, tzinfo=UTC)
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for row in export_rows(count):
        user_id, email = "Custom:" + row["id"], row["email"]
        stored = legacy_stored_hash(row["salt"], row["password"])
        login_row, account_row = account_rows(user_id, email, stored, created)
        alias_partition, alias_row = alias_keys(user_id)
        alias = {
            "PartitionKey": alias_partition,
            "RowKey": alias_row,
            "UserId": user_id,
            "Email": email,
            "AccountPartition": partition_for_email(email),
        }
        by_partition.setdefault(login_row["PartitionKey"], []).extend([login_row, account_row])
        by_partition.setdefault(alias_partition, []).append(alias)
    batches = [
        entities[start : start + _ENTITIES_PER_TRANSACTION]
        for entities in by_partition.values()
        for start in range(0, len(entities), _ENTITIES_PER_TRANSACTION)
    ]
    total = sum(len(batch) for batch in batches)
    marks: list[tuple[float, int]] = []
    sent = 0
    started = time.perf_counter()
    for batch in batches:
        table.submit_transaction([("create", entity) for entity in batch])
        sent += len(batch)
        marks.append((time.perf_counter(), sent))
    elapsed = time.perf_counter() - started
    return _rate(count, elapsed, started, marks, total)


def importer(azurite: Azurite, export: Path, count: int, workers: int) -> tuple[Rate, float]:
    """``python -m tools.import_accounts`` on ``export``: its rate and its peak memory (MiB, all processes).

    The progress of both phases (aliases, then accounts) is read from the
    importer's listener in-process; the memory from a run of the command.
    """
    marks: list[tuple[float, int]] = []
    done = 0

    def listener(phase: str, finished: int) -> None:
        nonlocal done
        if phase != "validating":
            done += finished
            marks.append((time.perf_counter(), done))

    storage = _storage(azurite, "Importer")
    sampler = _MemorySampler(os.getpid(), exclude=azurite.pid)
    started = time.perf_counter()
    with sampler:
        summary = import_accounts.import_export(
            import_accounts.read_rows(export, "json"),
            {},
            storage,
            workers=workers,
            show_progress=False,
            on_progress=listener,
        )
    elapsed = time.perf_counter() - started
    if summary.imported != count or any(reason == NOT_FINISHED for _, reason in summary.failed):
        raise RuntimeError(f"the import did not complete: {summary}")
    return _rate(count, elapsed, started, marks, 2 * count), sampler.peak_mib


def dry_run_memory(azurite: Azurite, export: Path) -> tuple[float, float]:
    """Peak resident memory (MiB) and seconds of ``import_accounts --dry-run`` on ``export``, as run."""
    environment = dict(os.environ) | {
        "ACCOUNTS_STORAGE_CONNECTION": azurite.connection_string,
        "ACCOUNTS_TABLE": "DryRun",
    }
    command = [sys.executable, "-m", "tools.import_accounts", str(export), "--dry-run"]
    command += ["--settings", "/nonexistent"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    with _MemorySampler(process.pid, include_self=True) as sampler:
        output, _ = process.communicate()
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"the dry run failed: {output.decode(errors='replace')}")
    return sampler.peak_mib, elapsed


def _storage(azurite: Azurite, table: str) -> StorageSettings:
    return StorageSettings(table_name=table, connection_string=azurite.connection_string)


def _rate(accounts: int, elapsed: float, started: float, marks: list[tuple[float, int]], total: int) -> Rate:
    """The rate over the run, and over the first and last tenth of ``total`` units of work."""

    def time_at(units: float) -> float:
        return next((moment for moment, done in marks if done >= units), marks[-1][0])

    tenth = total / 10
    first = time_at(tenth) - started
    last = marks[-1][0] - time_at(total - tenth)
    per_unit = accounts / total
    return Rate(accounts, elapsed, tenth * per_unit / max(first, 1e-9), tenth * per_unit / max(last, 1e-9))


class _MemorySampler:
    """Samples the summed resident memory of a process's children (and itself) every 50 ms."""

    def __init__(self, pid: int, *, include_self: bool = False, exclude: int | None = None) -> None:
        self.pid = pid
        self.exclude = exclude
        self.include_self = include_self
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._baseline_kib = 0 if include_self else status_kib(pid)

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.05)
        self._sample()

    def _sample(self) -> None:
        pids = _descendants(self.pid, self.exclude)
        if self.include_self:
            pids.append(self.pid)
        total = sum(status_kib(pid) for pid in pids)
        if not self.include_self:
            total += max(status_kib(self.pid), self._baseline_kib)
        self.peak_kib = max(self.peak_kib, total)


def _descendants(pid: int, exclude: int | None = None) -> list[int]:
    """Every process below ``pid``, but ``exclude`` and what is below it."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                children = [int(child) for child in task.read_text().split() if int(child) != exclude]
            except OSError:
                continue
            found += children
            stack += children
    return found


def measure(accounts: int, memory_rows: int, workers: int, folder: Path) -> dict[str, Any]:
    """Every figure of the import section, each writer on a fresh Azurite."""
    export = write_export(folder / "export.json", accounts)
    with Azurite() as azurite:
        bare = bare_writer(azurite, accounts)
    with Azurite() as azurite:
        ours, import_peak = importer(azurite, export, accounts, workers)
    big = write_export(folder / "big.json", memory_rows)
    with Azurite() as azurite:
        dry_peak, dry_seconds = dry_run_memory(azurite, big)
    big.unlink()
    return {
        "bare": bare,
        "ours": ours,
        "import_peak_mib": import_peak,
        "dry_peak_mib": dry_peak,
        "dry_seconds": dry_seconds,
    }


def report_import(report: Report, accounts: int, memory_rows: int, workers: int) -> None:
    """Figure 11: the importer against the bare writer, and its memory; written to ``report``."""
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(accounts, memory_rows, workers, Path(folder))
    bare, ours = figures["bare"], figures["ours"]
    ratio = ours.per_second / bare.per_second
    report.table(
        "11. Import",
        f"{accounts:,} accounts (three entities each: login, account and alias rows), each writer into a "
        "fresh in-memory Azurite on this machine. The bare writer is `azure-data-tables` alone sending the "
        "same entities, built before its clock starts, in 100-entity transactions one after another. The "
        f"importer is timed end to end from the export file, with its default `--workers` ({workers}, one "
        "per core): streaming, validating, spooling, reading what exists, writing. The rate change is the "
        "last tenth's rate over the first tenth's. Memory is the summed resident memory of the importer "
        "and its workers, sampled every 50 ms.",
    )
    report.row("bare serial writer", f"{bare.per_second:.0f} accounts/s ({bare.seconds:.1f} s)")
    report.row("bare writer, last tenth / first tenth", f"{bare.change:.2f}")
    report.row("importer", f"{ours.per_second:.0f} accounts/s ({ours.seconds:.1f} s)")
    report.row("importer, last tenth / first tenth", f"{ours.change:.2f}")
    report.row(
        "**importer / bare writer**",
        f"{ratio:.2f}",
        f"≥ {TARGET_RATIO:.1f}",
        ratio >= TARGET_RATIO,
    )
    report.row(f"importer peak memory, {accounts:,} accounts", f"{figures['import_peak_mib']:.0f} MiB")
    report.row(
        f"peak memory, `--dry-run` on {memory_rows:,} rows (read, validate, spool every row)",
        f"{figures['dry_peak_mib']:.0f} MiB in {figures['dry_seconds']:.0f} s",
        f"< {MEMORY_LIMIT_MIB} MiB",
        figures["dry_peak_mib"] < MEMORY_LIMIT_MIB,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.importer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--memory-rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(args.accounts, args.memory_rows, args.workers, Path(folder))
    for name, value in figures.items():
        print(f"{name}: {value}")
    bare, ours = figures["bare"], figures["ours"]
    ratio = ours.per_second / bare.per_second
    print(f"ratio: {ratio:.2f} (bare {bare.per_second:.0f}/s, ours {ours.per_second:.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
