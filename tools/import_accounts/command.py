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
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import ijson

from shared.accounts.store import AccountStore
from shared.errors import ServiceError
from shared.settings import load_storage_settings
from tools.devhost.local_settings import PROJECT_ROOT, apply_local_settings
from tools.import_accounts.phases import import_export
from tools.import_accounts.rows import FIELDS, parse_account, read_rows
from tools.import_accounts.summary import Summary

__all__ = ["Summary", "import_export", "main", "parse_account", "read_rows"]


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
