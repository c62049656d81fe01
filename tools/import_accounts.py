"""Import accounts exported from Azure Mobile Services custom auth.

    python -m tools.import_accounts FILE [--format json|csv] [--map FIELD=COLUMN ...] [--workers N]
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

Re-running is safe: an account already imported, or one that registered or
logged in since, is never overwritten. Bad rows are reported and skipped; they
never stop the import. Exit status: 0 all rows imported or already there,
1 some rows rejected, 2 some rows could not be written (storage) or the file
could not be read.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TextIO, TypeVar

from tqdm import tqdm

from shared.account_store import (
    LEGACY_USER_ID_PREFIX,
    AccountStore,
    ImportOutcome,
    alias_keys,
    partition_for_email,
)
from shared.emails import normalize_email
from shared.errors import InvalidRequest, ServiceError
from shared.mobile_services import legacy_stored_hash
from shared.settings import load_storage_settings
from tools.local_settings import PROJECT_ROOT, apply_local_settings

FIELDS = ("id", "email", "password", "salt", "createDate")
REQUIRED = ("id", "email", "password", "salt")
PROGRESS_BAR_FROM_ROWS = 100
ACCOUNTS_PER_TRANSACTION = 50  # two rows each: 100 operations, the most one transaction takes
ALIASES_PER_TRANSACTION = 100
MAX_ID_LENGTH = 200


class RowError(ValueError):
    """A row that cannot be imported; the message is the reason shown to the operator."""


@dataclass(frozen=True)
class LegacyAccount:
    """One validated, normalized row."""

    row: int
    user_id: str
    email: str
    stored_hash: str
    created_at: datetime


@dataclass
class Summary:
    """What an import did, row by row where it matters."""

    imported: int = 0
    already_imported: int = 0
    email_taken: list[tuple[int, str]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)

    @property
    def skipped_as_duplicate(self) -> int:
        return self.already_imported + len(self.email_taken)

    def exit_status(self) -> int:
        if self.failed:
            return 2
        return 1 if self.rejected else 0

    def write(self, out: TextIO) -> None:
        out.write(f"imported: {self.imported}\n")
        out.write(
            f"skipped as duplicate: {self.skipped_as_duplicate} (already imported: {self.already_imported}, "
            f"email has another account: {len(self.email_taken)})\n"
        )
        for row, reason in self.email_taken:
            out.write(f"  row {row}: {reason}\n")
        out.write(f"rejected: {len(self.rejected)}\n")
        for row, reason in self.rejected:
            out.write(f"  row {row}: {reason}\n")
        if self.failed:
            out.write(f"failed, storage unavailable (re-run to retry): {len(self.failed)}\n")
            for row, reason in self.failed:
                out.write(f"  row {row}: {reason}\n")


def read_rows(path: Path, file_format: str) -> Iterator[dict[str, Any]]:
    """Yield the raw records of an export file."""
    if file_format == "json":
        document = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(document, list):
            raise ValueError("a JSON export must be an array of objects")
        for record in document:
            yield record if isinstance(record, dict) else {}
    else:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            yield from csv.DictReader(stream)


def parse_account(row: int, record: Mapping[str, Any], columns: Mapping[str, str]) -> LegacyAccount:
    """Validate and normalize one record.

    :raises RowError: with the reason the row cannot be imported.
    """
    values = {name: record.get(columns.get(name, name)) for name in FIELDS}
    for name in REQUIRED:
        value = values[name]
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RowError(f"missing {name}")
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise RowError(f"{name} is not text")
    legacy_id = str(values["id"]).strip()
    user_id = legacy_id if legacy_id.startswith(LEGACY_USER_ID_PREFIX) else LEGACY_USER_ID_PREFIX + legacy_id
    if len(user_id) > MAX_ID_LENGTH or any(ord(c) < 0x20 for c in user_id):
        raise RowError("id is too long or has control characters")
    try:
        email = normalize_email(str(values["email"]))
    except InvalidRequest:
        raise RowError("invalid email") from None
    try:
        stored_hash = legacy_stored_hash(str(values["salt"]).strip(), str(values["password"]).strip())
    except ValueError as error:
        raise RowError(str(error)) from None
    return LegacyAccount(row, user_id, email, stored_hash, _created_at(values["createDate"]))


def _created_at(value: Any) -> datetime:
    if value is None or value == "":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(value / 1000, UTC)  # JavaScript milliseconds
        else:
            parsed = datetime.fromisoformat(str(value).strip())
    except (ValueError, OverflowError, OSError):
        raise RowError("createDate is not a date") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def validate(
    records: Sequence[Mapping[str, Any]], columns: Mapping[str, str], summary: Summary
) -> list[LegacyAccount]:
    """Parse every record; reject bad rows and later duplicates (by email or id) within the file."""
    accounts: list[LegacyAccount] = []
    first_row_of: dict[str, int] = {}
    for row, record in enumerate(records, start=1):
        try:
            account = parse_account(row, record, columns)
            for kind, key in (("email", "email:" + account.email), ("id", "id:" + account.user_id)):
                if key in first_row_of:
                    raise RowError(f"duplicate {kind} (first seen in row {first_row_of[key]})")
        except RowError as error:
            summary.rejected.append((row, str(error)))
            continue
        first_row_of["email:" + account.email] = first_row_of["id:" + account.user_id] = row
        accounts.append(account)
    return accounts


def import_accounts(
    store: AccountStore,
    accounts: Sequence[LegacyAccount],
    summary: Summary,
    *,
    workers: int = 16,
    emails_verified: bool = False,
) -> Summary:
    """Write validated accounts to storage; record each outcome in ``summary``.

    In phases, each in parallel over partitions: read the login rows and alias
    rows that exist; decide per account; write alias rows, then account rows,
    in transactions of up to 100 operations. A transaction that meets a row
    written meanwhile (say, a registration during the import) falls back to
    importing its accounts one by one, which never overwrites. Imported
    emails are marked unverified unless ``emails_verified``.
    """
    show_bar = len(accounts) >= PROGRESS_BAR_FROM_ROWS
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(accounts), file=sys.stderr, unit="account", disable=not show_bar) as bar,
    ):
        by_partition = _group(accounts, lambda account: partition_for_email(account.email))
        by_alias_partition = _group(accounts, lambda account: alias_keys(account.user_id)[0])
        logins = dict(zip(by_partition, pool.map(_attempt(store.existing_logins), by_partition), strict=True))
        alias_lists = pool.map(_attempt(store.existing_aliases), by_alias_partition)
        alias_emails = dict(zip(by_alias_partition, alias_lists, strict=True))

        to_create, need_alias = _classify(accounts, logins, alias_emails, summary)
        bar.update(len(accounts) - len(to_create))

        failed_aliases: set[str] = set()
        alias_chunks = [
            chunk
            for group in _group(need_alias, lambda account: alias_keys(account.user_id)[0]).values()
            for chunk in _chunks(group, ALIASES_PER_TRANSACTION)
        ]
        put_aliases = _attempt(store.put_aliases)
        for chunk, written in zip(
            alias_chunks,
            pool.map(lambda c: put_aliases([(a.user_id, a.email) for a in c]), alias_chunks),
            strict=True,
        ):
            if isinstance(written, ServiceError):
                failed_aliases.update(account.user_id for account in chunk)

        creatable = []
        for account in to_create:
            if account.user_id in failed_aliases:
                summary.failed.append((account.row, "storage_unavailable"))
                bar.update()
            else:
                creatable.append(account)
        account_chunks = [
            chunk
            for group in _group(creatable, lambda account: partition_for_email(account.email)).values()
            for chunk in _chunks(group, ACCOUNTS_PER_TRANSACTION)
        ]
        for chunk, outcomes in zip(
            account_chunks,
            pool.map(lambda c: _create_chunk(store, c, emails_verified), account_chunks),
            strict=True,
        ):
            for account, outcome in zip(chunk, outcomes, strict=True):
                _record(summary, account, outcome)
            bar.update(len(chunk))
    summary.rejected.sort()
    summary.email_taken.sort()
    summary.failed.sort()
    return summary


def _classify(
    accounts: Sequence[LegacyAccount],
    logins: Mapping[str, dict[str, str] | ServiceError],
    alias_emails: Mapping[str, dict[str, str] | ServiceError],
    summary: Summary,
) -> tuple[list[LegacyAccount], list[LegacyAccount]]:
    """Decide each account from what exists; return those to create and those that need an alias."""
    to_create: list[LegacyAccount] = []
    need_alias: list[LegacyAccount] = []
    for account in accounts:
        existing_logins = logins[partition_for_email(account.email)]
        existing_aliases = alias_emails[alias_keys(account.user_id)[0]]
        if isinstance(existing_logins, ServiceError) or isinstance(existing_aliases, ServiceError):
            summary.failed.append((account.row, "storage_unavailable"))
            continue
        owner = existing_logins.get(account.email)
        aliased_email = existing_aliases.get(account.user_id)
        if aliased_email is not None and aliased_email != account.email:
            _record(summary, account, ImportOutcome.USER_ID_TAKEN)
        elif owner == account.user_id:
            _record(summary, account, ImportOutcome.ALREADY_IMPORTED)
            if aliased_email is None:
                need_alias.append(account)  # repairs an import cut short between its two writes
        elif owner is not None:
            _record(summary, account, ImportOutcome.EMAIL_TAKEN)
        else:
            to_create.append(account)
            need_alias.append(account)
    return to_create, need_alias


def _create_chunk(
    store: AccountStore, chunk: list[LegacyAccount], emails_verified: bool
) -> list[ImportOutcome | ServiceError]:
    rows = [(a.user_id, a.email, a.stored_hash, a.created_at) for a in chunk]
    created = _attempt(store.create_imported)(rows, email_verified=emails_verified)
    if created is True:
        return [ImportOutcome.IMPORTED] * len(chunk)
    if isinstance(created, ServiceError):
        return [created] * len(chunk)
    import_one = _attempt(store.import_legacy)
    return [
        import_one(a.user_id, a.email, a.stored_hash, a.created_at, email_verified=emails_verified)
        for a in chunk
    ]


def _record(summary: Summary, account: LegacyAccount, outcome: ImportOutcome | ServiceError) -> None:
    if outcome is ImportOutcome.IMPORTED:
        summary.imported += 1
    elif outcome is ImportOutcome.ALREADY_IMPORTED:
        summary.already_imported += 1
    elif outcome is ImportOutcome.EMAIL_TAKEN:
        summary.email_taken.append((account.row, f"{account.email} already has another account"))
    elif outcome is ImportOutcome.USER_ID_TAKEN:
        summary.rejected.append((account.row, f"{account.user_id} was imported with another email"))
    else:
        summary.failed.append((account.row, outcome.code))


T = TypeVar("T")
K = TypeVar("K")
P = ParamSpec("P")


def _attempt(function: Callable[P, T]) -> Callable[P, T | ServiceError]:
    """Wrap ``function`` so a service error (storage down) is returned, not raised."""

    def attempt(*args: P.args, **kwargs: P.kwargs) -> T | ServiceError:
        try:
            return function(*args, **kwargs)
        except ServiceError as error:
            return error

    return attempt


def _group(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    groups: dict[K, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
    parser.add_argument("--workers", type=int, default=16, help="parallel storage requests (default 16)")
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
        store = AccountStore(load_storage_settings(os.environ))
    except ServiceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    status = 0
    if args.file is not None:
        file_format = args.format or ("csv" if args.file.suffix.lower() == ".csv" else "json")
        try:
            records = list(read_rows(args.file, file_format))
        except (OSError, ValueError, csv.Error) as error:
            print(f"error: cannot read {args.file}: {error}", file=sys.stderr)
            return 2
        summary = Summary()
        accounts = validate(records, columns, summary)
        import_accounts(store, accounts, summary, workers=args.workers, emails_verified=args.emails_verified)
        summary.write(sys.stdout)
        status = summary.exit_status()
    if args.stats:
        try:
            total, legacy = store.hash_statistics()
        except ServiceError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        share = f" ({100 * legacy / total:.1f} %)" if total else ""
        print(f"accounts: {total}\nwith Mobile Services hashes, not yet upgraded: {legacy}{share}")
    return status


if __name__ == "__main__":
    sys.exit(main())
