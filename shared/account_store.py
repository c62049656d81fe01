"""Accounts in Azure Table Storage: the schema and every read and write of it.

An account is two entities in one partition, written and deleted together in
one entity-group transaction:

============  =========================  ============================================================
entity        RowKey                     properties
============  =========================  ============================================================
login row     ``email:<encoded email>``  ``UserId``, ``Email``, ``PasswordHash``, ``SessionVersion``
account row   ``user:<user id>``         ``Email``, ``CreatedAt``, ``SessionVersion``
============  =========================  ============================================================

The PartitionKey is ``acct-`` + the first two hex digits of SHA-256 of the
normalized email (256 partitions). New user ids are ``custom:`` + those two
digits + 22 random URL-safe characters, so both rows are found by a point read:
login by email, everything else by user id. Inserting the login row fails when
the email exists, which makes uniqueness atomic without check-then-insert.

The login row also keeps the email's failed-login record (``FailedLogins``,
``LockedUntil``, ``FailureWindowStart``, ``FailureWindowCount``). An email with
no account that fails to log in gets a login row holding only that record (a
placeholder), so that lockout treats known and unknown emails alike; a
registration claims the placeholder with an ETag-guarded transaction.

``SessionVersion`` is on both rows, so that login (login row) can put it in a
token and the gate (account row) can check it, each with one read. Every change
of it writes both rows in one transaction, each guarded by its ETag.

Accounts imported from Mobile Services keep their user ids (``Custom:<id>``),
which carry no partition. For them an alias row (PartitionKey ``alias-`` + two
hex digits of SHA-256 of the user id, RowKey ``user:<user id>``) names the
account's partition; it never changes, so each process caches it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceResponseError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.errors import ConflictError, EmailTaken, InvalidRequest, StorageUnavailable
from shared.events import log_event
from shared.mobile_services import is_legacy_hash
from shared.settings import StorageSettings
from shared.storage import storage_errors, table_client
from shared.throttling import LoginThrottle

__all__ = [
    "LEGACY_USER_ID_PREFIX",
    "Account",
    "AccountStore",
    "Credentials",
    "ImportOutcome",
    "LoginRecord",
    "account_rows",
    "alias_keys",
    "email_row_key",
    "encode_key",
    "new_user_id",
    "partition_for_email",
    "partition_for_user_id",
]

USER_ID_PREFIX = "custom:"
LEGACY_USER_ID_PREFIX = "Custom:"
_PARTITION_PREFIX = "acct-"
_ALIAS_PARTITION_PREFIX = "alias-"
_ALIAS_CACHE_LIMIT = 100_000
_SHARD_DIGITS = 2
_USER_ID_LENGTH = len(USER_ID_PREFIX) + _SHARD_DIGITS + 22
_MAX_KEY_LENGTH = 512
# Characters Table Storage forbids in keys, plus "%" so that encoding is reversible.
_KEY_UNSAFE = frozenset("%/\\#?") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}


@dataclass(frozen=True, slots=True)
class Credentials:
    """What login needs: the login row of an account."""

    user_id: str
    email: str
    password_hash: str
    session_version: int
    etag: str


@dataclass(frozen=True, slots=True)
class LoginRecord:
    """What a login attempt reads: the credentials (if an account exists) and the failure record."""

    email: str
    credentials: Credentials | None
    throttle: LoginThrottle
    etag: str | None


@dataclass(frozen=True, slots=True)
class Account:
    """The account row: what an account is, found by user id."""

    user_id: str
    email: str
    created_at: datetime
    session_version: int = 0
    etag: str = ""


def encode_key(value: str) -> str:
    """Percent-encode the characters Table Storage forbids in PartitionKey and RowKey."""
    return "".join(f"%{ord(char):02X}" if char in _KEY_UNSAFE else char for char in value)


def partition_for_email(email: str) -> str:
    """Return the partition holding the account of a normalized email."""
    return _PARTITION_PREFIX + hashlib.sha256(email.encode("utf-8")).hexdigest()[:_SHARD_DIGITS]


def partition_for_user_id(user_id: str) -> str | None:
    """Return the partition of a user id, or ``None`` when it is not one of ours."""
    shard = user_id[len(USER_ID_PREFIX) : len(USER_ID_PREFIX) + _SHARD_DIGITS]
    if not user_id.startswith(USER_ID_PREFIX) or len(user_id) != _USER_ID_LENGTH:
        return None
    if any(char not in "0123456789abcdef" for char in shard):
        return None
    return _PARTITION_PREFIX + shard


def new_user_id(email: str) -> str:
    """Return a fresh, random, URL-safe user id whose partition matches ``email``'s."""
    return USER_ID_PREFIX + partition_for_email(email)[len(_PARTITION_PREFIX) :] + secrets.token_urlsafe(16)


def email_row_key(email: str) -> str:
    """Return the RowKey of the login row of a normalized email.

    :raises InvalidRequest: the encoded email is longer than a key may be.
    """
    row_key = "email:" + encode_key(email)
    if len(row_key) > _MAX_KEY_LENGTH:
        raise InvalidRequest("The email address is too long.")
    return row_key


def _user_row_key(user_id: str) -> str:
    return "user:" + encode_key(user_id)


def account_rows(
    user_id: str, email: str, password_hash: str, created_at: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two entities of a new account (the schema above): its login row and its account row."""
    partition = partition_for_email(email)
    login_row = {
        "PartitionKey": partition,
        "RowKey": email_row_key(email),
        "UserId": user_id,
        "Email": email,
        "PasswordHash": password_hash,
        "SessionVersion": 0,
    }
    account_row = {
        "PartitionKey": partition,
        "RowKey": _user_row_key(user_id),
        "Email": email,
        "CreatedAt": created_at,
        "SessionVersion": 0,
    }
    return login_row, account_row


def alias_keys(user_id: str) -> tuple[str, str]:
    """Return the PartitionKey and RowKey of a legacy user id's alias row."""
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:_SHARD_DIGITS]
    return _ALIAS_PARTITION_PREFIX + digest, _user_row_key(user_id)


class ImportOutcome(Enum):
    """What importing one legacy account did."""

    IMPORTED = "imported"
    ALREADY_IMPORTED = "already imported"
    EMAIL_TAKEN = "email has another account"
    USER_ID_TAKEN = "user id was imported with another email"


class AccountStore:
    """Reads and writes accounts.

    The request-path methods are one storage round trip each, except where a
    race or a lost answer must be resolved by reading again (their docstrings say).
    """

    def __init__(self, settings: StorageSettings) -> None:
        self._settings = settings
        self._alias_partitions: dict[str, str] = {}

    def create(self, email: str, password_hash: str, *, now: datetime | None = None) -> Account:
        """Store a new account for a normalized ``email``, atomically.

        :raises EmailTaken: an account with this email exists.
        :raises InvalidRequest: the email cannot be stored as a key.
        :raises StorageUnavailable: storage could not be reached.
        """
        account = Account(
            user_id=new_user_id(email),
            email=email,
            created_at=(now or datetime.now(UTC)).replace(microsecond=0),
        )
        login_row, account_row = account_rows(account.user_id, email, password_hash, account.created_at)
        results = self._create_or_claim(login_row, account_row, "create account")
        if results is None:
            raise EmailTaken()
        return dataclasses.replace(account, etag=results[1]["etag"])

    def credentials(self, email: str) -> Credentials | None:
        """Return the login row of a normalized ``email``, or ``None`` if there is no account."""
        return self.login_record(email).credentials

    def login_record(self, email: str) -> LoginRecord:
        """Read the login row of a normalized ``email``: one point read, account or not."""
        entity = self._get(partition_for_email(email), email_row_key(email), "read credentials")
        if entity is None:
            return LoginRecord(email, None, LoginThrottle(), None)
        etag = entity.metadata["etag"]
        credentials = None
        if "UserId" in entity:
            credentials = Credentials(
                user_id=entity["UserId"],
                email=entity["Email"],
                password_hash=entity["PasswordHash"],
                session_version=entity.get("SessionVersion", 0),
                etag=etag,
            )
        throttle = LoginThrottle(
            consecutive_failures=entity.get("FailedLogins", 0),
            locked_until=_instant(entity.get("LockedUntil")),
            window_start=_instant(entity.get("FailureWindowStart")),
            window_failures=entity.get("FailureWindowCount", 0),
        )
        return LoginRecord(email, credentials, throttle, etag)

    def update_login(
        self, record: LoginRecord, *, throttle: LoginThrottle, password_hash: str | None = None
    ) -> bool:
        """Store a new failure record (and hash) for ``record``'s email if its row is unchanged since read.

        Creates a placeholder row for an email without one. :returns: ``False``
        when another request wrote the row first (nothing written; read again).
        """
        entity: dict[str, Any] = {
            "PartitionKey": partition_for_email(record.email),
            "RowKey": email_row_key(record.email),
            "FailedLogins": throttle.consecutive_failures,
            "LockedUntil": throttle.locked_until or _NEVER,
            "FailureWindowStart": throttle.window_start or _NEVER,
            "FailureWindowCount": throttle.window_failures,
        }
        if password_hash is not None:
            entity["PasswordHash"] = password_hash
        with storage_errors("update login"):
            try:
                if record.etag is None:
                    self._table().create_entity(entity)
                else:
                    self._table().update_entity(entity, mode=UpdateMode.MERGE, **_unchanged(record.etag))
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    def account(self, user_id: str) -> Account | None:
        """Return the account of ``user_id``, or ``None`` if there is none."""
        partition = partition_for_user_id(user_id) or self._legacy_partition(user_id)
        if partition is None:
            return None
        entity = self._get(partition, _user_row_key(user_id), "read account")
        if entity is None:
            return None
        created_at: datetime = entity["CreatedAt"]
        return Account(
            user_id=user_id,
            email=entity["Email"],
            created_at=created_at,
            session_version=entity.get("SessionVersion", 0),
            etag=entity.metadata["etag"],
        )

    def revoke_sessions(self, account: Account) -> None:
        """Make every token issued so far for ``account`` invalid.

        When another request changed the account since it was read, that
        request already moved the session version on, which revokes the same
        tokens; so a lost race is success, not an error.
        """
        new_version = account.session_version + 1
        try:
            self._update_both(account, None, {"SessionVersion": new_version}, "revoke sessions")
        except ConflictError:
            log_event("logged_out", user_id=account.user_id, race="lost; another change revoked first")

    def change_password(self, account: Account, credentials: Credentials, password_hash: str) -> int:
        """Store a new hash, clear the consecutive failures, and revoke every earlier token,
        if neither row changed since read.

        :returns: the new session version, for the caller's fresh token.
        :raises ConflictError: another request changed the account first; nothing written.
        """
        new_version = max(account.session_version, credentials.session_version) + 1
        changes = {"SessionVersion": new_version}
        self._update_both(account, credentials, changes, "change password", password_hash=password_hash)
        return new_version

    def delete(self, account: Account, credentials: Credentials) -> None:
        """Delete both rows of an account, if neither changed since read; the email is free again.

        :raises ConflictError: another request changed the account first; nothing deleted.
        """
        partition = partition_for_email(account.email)
        operations: list[Any] = [
            (
                "delete",
                {"PartitionKey": partition, "RowKey": email_row_key(account.email)},
                _unchanged(credentials.etag),
            ),
            (
                "delete",
                {"PartitionKey": partition, "RowKey": _user_row_key(account.user_id)},
                _unchanged(account.etag),
            ),
        ]
        self._transact(operations, "delete account")
        if partition_for_user_id(account.user_id) is None:
            self._delete_alias(account.user_id)

    def import_legacy(
        self, user_id: str, email: str, stored_hash: str, created_at: datetime
    ) -> ImportOutcome:
        """Store an account imported from Mobile Services, keeping its user id; never overwrite.

        Safe to repeat: an account already imported, or one that registered or
        changed since, is left exactly as it is.

        :raises StorageUnavailable: storage could not be reached (repeat later).
        """
        if not self._claim_alias(user_id, email):
            return ImportOutcome.USER_ID_TAKEN
        login_row, account_row = account_rows(user_id, email, stored_hash, created_at)
        if self._create_or_claim(login_row, account_row, "import account") is not None:
            return ImportOutcome.IMPORTED
        existing = self.credentials(email)
        if existing is not None and existing.user_id == user_id:
            return ImportOutcome.ALREADY_IMPORTED
        self._delete_alias(user_id)
        return ImportOutcome.EMAIL_TAKEN

    # Bulk import: a handful of requests per partition instead of several per account.

    def existing_logins(self, partition: str) -> dict[str, str]:
        """Map each login row of ``partition`` (by normalized email) to its user id."""
        query = f"PartitionKey eq '{partition}' and RowKey ge 'email:' and RowKey lt 'email;'"
        with storage_errors("list logins"):
            return {
                str(entity["Email"]): str(entity["UserId"])
                for entity in self._table().query_entities(query, select=["Email", "UserId"])
                if entity.get("UserId")  # not a placeholder holding only a failure record
            }

    def existing_aliases(self, alias_partition: str) -> dict[str, str]:
        """Map each legacy user id with an alias in ``alias_partition`` to the email it was imported with."""
        query = f"PartitionKey eq '{alias_partition}'"
        with storage_errors("list aliases"):
            return {
                str(entity["UserId"]): str(entity["Email"])
                for entity in self._table().query_entities(query, select=["UserId", "Email"])
            }

    def put_aliases(self, aliases: list[tuple[str, str]]) -> None:
        """Write alias rows (legacy user id, email), all of one alias partition, in one transaction."""
        operations = [
            ("upsert", self._alias_row(user_id, email), {"mode": UpdateMode.REPLACE})
            for user_id, email in aliases
        ]
        self._transact(operations, "write aliases")

    def create_imported(self, accounts: list[tuple[str, str, str, datetime]]) -> bool:
        """Create legacy accounts (user id, email, stored hash, created), all of one partition, atomically.

        :returns: ``False`` if any of their rows exists (nothing was written).
        """
        operations = []
        for user_id, email, stored_hash, created_at in accounts:
            login_row, account_row = account_rows(user_id, email, stored_hash, created_at)
            operations += [("create", login_row), ("create", account_row)]
        try:
            self._transact(operations, "import accounts")
        except ConflictError:
            return False
        return True

    def hash_statistics(self) -> tuple[int, int]:
        """Count accounts, and those still holding an imported Mobile Services hash.

        Reads every login row: an administrative query, never on a request path.
        """
        query = "RowKey ge 'email:' and RowKey lt 'email;'"
        total = legacy = 0
        with storage_errors("count hashes"):
            for entity in self._table().query_entities(query, select=["PasswordHash"]):
                if entity.get("PasswordHash"):  # not a placeholder holding only a failure record
                    total += 1
                    legacy += is_legacy_hash(str(entity["PasswordHash"]))
        return total, legacy

    def _create_or_claim(
        self, login_row: dict[str, Any], account_row: dict[str, Any], operation: str
    ) -> list[Mapping[str, Any]] | None:
        """Insert both rows of a new account, taking over a placeholder login row if one exists.

        :returns: the transaction's results, or ``None`` if the email has an account.
        """
        with storage_errors(operation):
            answer_lost = False
            try:
                return self._table().submit_transaction([("create", login_row), ("create", account_row)])
            except TableTransactionError as error:
                if error.status_code != 409:
                    raise
            except ServiceResponseError:
                # Sent, but the answer was lost: it may have committed. If our rows are there, it did.
                answer_lost = True
            placeholder = self._get(login_row["PartitionKey"], login_row["RowKey"], operation)
            if placeholder is not None and placeholder.get("UserId") == login_row["UserId"]:
                # Ours: the transaction committed but its answer was lost.
                account = self._get(account_row["PartitionKey"], account_row["RowKey"], operation)
                return [
                    {"etag": placeholder.metadata["etag"]},
                    {"etag": account.metadata["etag"] if account else ""},
                ]
            if placeholder is None:
                # The lost transaction did not commit; or the row that conflicted is gone again.
                raise StorageUnavailable() if answer_lost else ConflictError()
            if "UserId" in placeholder:
                return None
            claim = {"mode": UpdateMode.REPLACE, **_unchanged(placeholder.metadata["etag"])}
            try:
                return self._table().submit_transaction(
                    [("update", login_row, claim), ("create", account_row)]
                )
            except TableTransactionError as error:
                if error.status_code in (409, 412):
                    return None  # another registration claimed it first
                raise

    def _alias_row(self, user_id: str, email: str) -> dict[str, Any]:
        alias_partition, alias_row = alias_keys(user_id)
        return {
            "PartitionKey": alias_partition,
            "RowKey": alias_row,
            "UserId": user_id,
            "Email": email,
            "AccountPartition": partition_for_email(email),
        }

    def _claim_alias(self, user_id: str, email: str) -> bool:
        alias = self._alias_row(user_id, email)
        with storage_errors("create alias"):
            try:
                self._table().create_entity(alias)
            except ResourceExistsError:
                existing = self._table().get_entity(alias["PartitionKey"], alias["RowKey"])
                return bool(existing.get("Email") == email)
        return True

    def _legacy_partition(self, user_id: str) -> str | None:
        partition = self._alias_partitions.get(user_id)
        if partition is None:
            alias = self._get(*alias_keys(user_id), "read alias")
            if alias is None:
                return None
            partition = str(alias["AccountPartition"])
            if len(self._alias_partitions) >= _ALIAS_CACHE_LIMIT:
                self._alias_partitions.clear()
            self._alias_partitions[user_id] = partition
        return partition

    def _delete_alias(self, user_id: str) -> None:
        self._alias_partitions.pop(user_id, None)
        with storage_errors("delete alias"):
            self._table().delete_entity(*alias_keys(user_id))

    def _update_both(
        self,
        account: Account,
        credentials: Credentials | None,
        changes: dict[str, Any],
        operation: str,
        *,
        password_hash: str | None = None,
    ) -> None:
        partition = partition_for_email(account.email)
        login_changes = dict(changes)
        if password_hash is not None:
            # A new password was given with the right current one: failures before it no longer count.
            login_changes |= {"PasswordHash": password_hash, "FailedLogins": 0, "LockedUntil": _NEVER}
        login_row = {"PartitionKey": partition, "RowKey": email_row_key(account.email), **login_changes}
        account_row = {"PartitionKey": partition, "RowKey": _user_row_key(account.user_id), **changes}
        # Without credentials, the login row must merely exist (If-Match: *).
        login_condition = _unchanged(credentials.etag) if credentials else {}
        merge = {"mode": UpdateMode.MERGE}
        self._transact(
            [
                ("update", login_row, merge | login_condition),
                ("update", account_row, merge | _unchanged(account.etag)),
            ],
            operation,
        )

    def _transact(self, operations: list[Any], operation: str) -> None:
        with storage_errors(operation):
            try:
                self._table().submit_transaction(operations)
            except TableTransactionError as error:
                if error.status_code in (404, 409, 412):  # gone, exists, changed: all a conflict
                    raise ConflictError() from None
                raise

    def _get(self, partition: str, row_key: str, operation: str) -> Any:
        with storage_errors(operation):
            try:
                return self._table().get_entity(partition, row_key)
            except ResourceNotFoundError:
                return None

    def _table(self) -> TableClient:
        return table_client(self._settings)


#: Stored for "no such instant": a merge cannot remove a property, so a lock is cleared by this.
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(value: datetime | None) -> datetime | None:
    return None if value is None or value <= _NEVER else value


def _unchanged(etag: str) -> dict[str, Any]:
    """The condition of a write that must fail if the row changed since it was read (If-Match)."""
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}
