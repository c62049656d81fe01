"""Reading a Mobile Services export and turning its rows into validated accounts.

Runs in the importer's process (reading, duplicate detection) and in its
worker processes (:func:`parse_batch`: the per-row checks, mostly email
normalization, which is the costly part).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

import ijson

from shared.accounts.emails import normalize_email
from shared.accounts.mobile_services import legacy_stored_hash
from shared.accounts.store import LEGACY_USER_ID_PREFIX, alias_keys, partition_for_email
from shared.errors import InvalidRequest

FIELDS = ("id", "email", "password", "salt", "createDate")
REQUIRED = ("id", "email", "password", "salt")
MAX_ID_LENGTH = 200
#: Bytes of the digest that duplicate detection keeps per email and per id.
_SEEN_DIGEST_SIZE = 16


class LegacyAccount(NamedTuple):
    """One validated, normalized row (a tuple: cheap to spool and to pass between processes)."""

    row: int
    user_id: str
    email: str
    stored_hash: str
    #: Seconds since the epoch (UTC).
    created: float

    @property
    def created_at(self) -> datetime:
        return datetime.fromtimestamp(self.created, UTC)

    @property
    def alias_partition(self) -> str:
        return alias_keys(self.user_id)[0]

    @property
    def partition(self) -> str:
        return partition_for_email(self.email)


class RowError(ValueError):
    """A row that cannot be imported; the message is the reason shown to the operator."""


def read_rows(path: Path, file_format: str) -> Iterator[dict[str, Any]]:
    """Yield the raw records of an export file, reading it as a stream.

    :raises ValueError: the file is not a JSON array (raised when read that far).
    :raises ijson.JSONError: the JSON is malformed.
    """
    if file_format == "json":
        with path.open("rb") as stream:
            _expect_json_array(stream)
            for record in ijson.items(stream, "item", use_float=True):
                yield record if isinstance(record, dict) else {}
    else:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            yield from csv.DictReader(stream)


def _expect_json_array(stream: IO[bytes]) -> None:
    """Skip a byte order mark; refuse a document that is not an array (leaves ``stream`` at its start)."""
    if stream.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        stream.seek(0)
    start = stream.tell()
    first = stream.read(1)
    while first.isspace():
        first = stream.read(1)
    if first != b"[":
        raise ValueError("a JSON export must be an array of objects")
    stream.seek(start)


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


def _created_at(value: Any) -> float:
    if value is None or value == "":
        return float(int(datetime.now(UTC).timestamp()))
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            parsed = datetime.fromtimestamp(value / 1000, UTC)  # JavaScript milliseconds
        else:
            parsed = datetime.fromisoformat(str(value).strip())
    except (ValueError, OverflowError, OSError):
        raise RowError("createDate is not a date") from None
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed).timestamp()


def parse_batch(
    batch: list[tuple[int, Mapping[str, Any]]], columns: Mapping[str, str]
) -> list[LegacyAccount | tuple[int, str]]:
    """Parse numbered records: each becomes an account, or (row, the reason it is rejected)."""
    parsed: list[LegacyAccount | tuple[int, str]] = []
    for row, record in batch:
        try:
            parsed.append(parse_account(row, record, columns))
        except RowError as error:
            parsed.append((row, str(error)))
    return parsed


class Duplicates:
    """Refuses a second row with an email or id seen before; remembers 16 bytes per email and per id."""

    def __init__(self) -> None:
        self._first_row_of: dict[bytes, int] = {}

    def add(self, account: LegacyAccount) -> None:
        """Remember ``account``'s email and id.

        :raises RowError: one of them was seen before (nothing is remembered).
        """
        keys = [("email", _seen_key("email", account.email)), ("id", _seen_key("id", account.user_id))]
        for kind, key in keys:
            if key in self._first_row_of:
                raise RowError(f"duplicate {kind} (first seen in row {self._first_row_of[key]})")
        for _, key in keys:
            self._first_row_of[key] = account.row


def _seen_key(kind: str, value: str) -> bytes:
    return hashlib.blake2b(f"{kind}:{value}".encode(), digest_size=_SEEN_DIGEST_SIZE).digest()
