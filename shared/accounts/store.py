"""Accounts in Azure Table Storage: the schema and every read and write of it.

An account is two entities in one partition, written and deleted together in
one entity-group transaction:

============  =========================  ============================================================
entity        RowKey                     properties
============  =========================  ============================================================
login row     ``email:<encoded email>``  ``UserId``, ``Email``, ``PasswordHash``, ``SessionVersion``,
                                         ``EmailVerified``
account row   ``user:<user id>``         ``Email``, ``CreatedAt``, ``SessionVersion``, ``EmailVerified``
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
account's partition; each process caches it, and looks again when the cached
partition no longer holds the account.

An account's rows always live in the partition of its current email. Changing
the email therefore moves the account (see :meth:`AccountStore.move_email`):
the old rows are marked ``MovingTo``, copied to the new partition marked
``MovedFrom``, the alias is pointed at the new partition, the old rows are
deleted (the commit point: from then on only the new email logs in), and the
marks are cleared. Any step can be interrupted; :meth:`AccountStore.resume_move`
completes the move from whatever state it finds, or undoes it when the new
email was taken by a registration before the copy. One-time codes (see
:mod:`shared.recovery.codes`) are rows of the account's partition too, so that using one
is part of the same transaction as the change it allows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
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

from shared.accounts.mobile_services import is_legacy_hash
from shared.errors import ConflictError, EmailTaken, InvalidRequest, StorageUnavailable
from shared.events import log_event
from shared.sessions.devices import SESSION_PROPERTY_PREFIX, DeviceSession, sessions_in
from shared.settings import StorageSettings
from shared.storage import storage_errors, table_client
from shared.throttling.lockout import LoginThrottle

__all__ = [
    "LEGACY_USER_ID_PREFIX",
    "Account",
    "AccountStore",
    "Credentials",
    "ImportOutcome",
    "LoginRecord",
    "MfaRecord",
    "MoveOutcome",
    "account_rows",
    "alias_keys",
    "email_row_key",
    "encode_key",
    "mfa_row_key",
    "new_user_id",
    "partition_for_email",
    "partition_for_user_id",
    "user_row_key",
]

#: One operation of an entity-group transaction, as azure-data-tables takes it.
Operation = tuple[Any, ...]

USER_ID_PREFIX = "custom:"
LEGACY_USER_ID_PREFIX = "Custom:"
_PARTITION_PREFIX = "acct-"
_ALIAS_PARTITION_PREFIX = "alias-"
_ALIAS_CACHE_LIMIT = 100_000
_MAX_REVOKE_ATTEMPTS = 10
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
    email_verified: bool = False
    #: Set while the account is being moved to another email (see the module's docstring).
    moving_to: str | None = None
    #: Set on the new login row of a move until the move is finished.
    moved_from: str | None = None
    #: A confirmed authenticator app (TOTP) is required after the password.
    mfa_totp: bool = False
    #: An operator disabled the account.
    disabled: bool = False

    @property
    def in_move(self) -> bool:
        """Whether an email change of this account is under way (or was interrupted)."""
        return self.moving_to is not None or self.moved_from is not None


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
    email_verified: bool = False
    #: The email the account is being moved to, while a change is under way.
    moving_to: str | None = None
    #: The email the account was moved from, until the move is finished.
    moved_from: str | None = None
    mfa_totp: bool = False
    recovery_codes_left: int = 0
    disabled: bool = False
    disabled_reason: str | None = None
    #: Every session stored on the row, live or ended by a newer session version.
    sessions: tuple[DeviceSession, ...] = ()
    #: The row as read, for rewriting it whole (ending a session).
    raw: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def live_sessions(self) -> tuple[DeviceSession, ...]:
        """The sessions that still work: stored, and of the current session version."""
        return tuple(s for s in self.sessions if s.version == self.session_version)

    def session(self, session_id: str) -> DeviceSession | None:
        """The live session ``session_id``, or ``None``."""
        return next((s for s in self.live_sessions if s.id == session_id), None)

    @property
    def in_move(self) -> bool:
        """Whether an email change of this account is under way (or was interrupted)."""
        return self.moving_to is not None or self.moved_from is not None


@dataclass(frozen=True, slots=True)
class MfaRecord:
    """The second-factor row of an account (``mfa:<user id>``, in the account's partition).

    Secrets are sealed (:mod:`shared.mfa.encryption`); recovery codes are
    keyed digests. ``last_step`` is the last TOTP time step used, so that no
    code is accepted twice; every write is guarded by the row's ETag.
    """

    user_id: str
    partition: str
    secret: str | None = None
    pending: str | None = None
    last_step: int | None = None
    recovery_digests: tuple[str, ...] = ()
    challenge: str | None = None
    challenge_expires: datetime | None = None
    #: Codes tried with the current challenge, each counted before it is checked.
    challenge_tries: int = 0
    #: The key(s) of the recovery-code digests, sealed under an encryption key (``None``: codes
    #: digested before keys were stored; they match under a key derived from an encryption key).
    recovery_key: str | None = None
    etag: str | None = None


def mfa_row_key(user_id: str) -> str:
    """Return the RowKey of the second-factor row of ``user_id``."""
    return "mfa:" + encode_key(user_id)


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


def user_row_key(user_id: str) -> str:
    """Return the RowKey of the account row of ``user_id``."""
    return "user:" + encode_key(user_id)


def account_rows(
    user_id: str, email: str, password_hash: str, created_at: datetime, *, email_verified: bool = False
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
        "EmailVerified": email_verified,
    }
    account_row = {
        "PartitionKey": partition,
        "RowKey": user_row_key(user_id),
        "Email": email,
        "CreatedAt": created_at,
        "SessionVersion": 0,
        "EmailVerified": email_verified,
    }
    return login_row, account_row


def alias_keys(user_id: str) -> tuple[str, str]:
    """Return the PartitionKey and RowKey of a legacy user id's alias row."""
    digest = hashlib.sha256(user_id.encode("utf-8")).hexdigest()[:_SHARD_DIGITS]
    return _ALIAS_PARTITION_PREFIX + digest, user_row_key(user_id)


class MoveOutcome(Enum):
    """How an email change ended."""

    MOVED = "moved"
    #: The new email got an account of its own before the move copied the account there.
    EMAIL_TAKEN = "email taken"
    #: There was no move of this account to resume.
    NOTHING = "nothing to do"


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

    def create(
        self,
        email: str,
        password_hash: str,
        *,
        now: datetime | None = None,
        session: DeviceSession | None = None,
    ) -> Account:
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
        if session is not None:
            account_row |= session.to_property()
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
                email_verified=bool(entity.get("EmailVerified", False)),
                moving_to=entity.get("MovingTo") or None,
                moved_from=entity.get("MovedFrom") or None,
                mfa_totp=bool(entity.get("MfaTotp", False)),
                disabled=bool(entity.get("Disabled", False)),
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
        return self._write_if_unchanged(entity, record.etag, "update login")

    def account(self, user_id: str) -> Account | None:
        """Return the account of ``user_id``, or ``None`` if there is none.

        One point read, in the partition the process last found the account
        in (or the one its user id names). When that partition no longer holds
        it (the account moved with an email change, on this or another
        instance), the alias row is read again and the account looked up there.
        """
        remembered = self._alias_partitions.get(user_id)
        partition = remembered or partition_for_user_id(user_id) or self._legacy_partition(user_id)
        if partition is None:
            return None
        entity = self._get(partition, user_row_key(user_id), "read account")
        if entity is None:
            moved_to = self._legacy_partition(user_id, refresh=True)
            if moved_to is None or moved_to == partition:
                return None
            entity = self._get(moved_to, user_row_key(user_id), "read account")
            if entity is None:
                return None
        return _account(user_id, entity)

    def revoke_sessions(self, account: Account) -> None:
        """Make every token issued so far for ``account`` invalid (raise its session version).

        A lost race is read again: when another request raised the version
        meanwhile, the same tokens are revoked already; when it changed the row
        otherwise (a login added a session, a last-seen time was written), the
        revocation is tried again on the fresh row.

        :raises ConflictError: the row kept changing (a flood of writes).
        """
        for _ in range(_MAX_REVOKE_ATTEMPTS):
            try:
                self._update_both(
                    account, None, {"SessionVersion": account.session_version + 1}, "revoke sessions"
                )
                return
            except ConflictError:
                fresh = self.account(account.user_id)
                if fresh is None or fresh.session_version > account.session_version:
                    return
                account = fresh
        raise ConflictError()

    def start_session(self, email: str, user_id: str, session: DeviceSession) -> None:
        """Store a new session on the account row: one write, no read.

        :raises ConflictError: the account is gone.
        """
        row = {"PartitionKey": partition_for_email(email), "RowKey": user_row_key(user_id)}
        with storage_errors("start session"):
            try:
                self._table().update_entity(row | session.to_property(), mode=UpdateMode.MERGE)
            except ResourceNotFoundError:
                raise ConflictError() from None

    def touch_session(self, account: Account, session: DeviceSession) -> Account:
        """Record that ``session`` was just used, if the row is unchanged since read (best effort).

        Guarded by the ETag so that a session ended meanwhile is not written back.

        :returns: the account as it is now (its new ETag), for the request's own writes.
        """
        row = {"PartitionKey": partition_for_email(account.email), "RowKey": user_row_key(account.user_id)}
        written = session.to_property()
        with storage_errors("touch session"):
            try:
                answer = self._table().update_entity(
                    row | written, mode=UpdateMode.MERGE, **_unchanged(account.etag)
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return account
        sessions = tuple(session if s.id == session.id else s for s in account.sessions)
        return dataclasses.replace(
            account, etag=str(answer["etag"]), raw={**account.raw, **written}, sessions=sessions
        )

    def end_sessions(self, account: Account, session_ids: set[str]) -> Account:
        """Rewrite the account row without ``session_ids`` (and without sessions ended before).

        :returns: the account as it is now.
        :raises ConflictError: the row changed since read; read again and retry.
        """
        live = {s.id for s in account.live_sessions} - session_ids
        row = {
            name: value
            for name, value in account.raw.items()
            if not name.startswith(SESSION_PROPERTY_PREFIX) or name[len(SESSION_PROPERTY_PREFIX) :] in live
        }
        with storage_errors("end sessions"):
            try:
                answer = self._table().update_entity(row, mode=UpdateMode.REPLACE, **_unchanged(account.etag))
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConflictError() from None
        sessions = tuple(s for s in account.sessions if s.id in live)
        return dataclasses.replace(account, etag=str(answer["etag"]), raw=row, sessions=sessions)

    def set_disabled(self, account: Account, disabled: bool, reason: str | None = None) -> None:
        """Disable (ending every session) or enable the account, on both rows.

        :raises ConflictError: the account row changed since read; nothing written.
        """
        flags: dict[str, Any] = {"Disabled": disabled, "DisabledReason": (reason or "") if disabled else ""}
        changes = flags | ({"SessionVersion": account.session_version + 1} if disabled else {})
        partition = partition_for_email(account.email)
        merge = {"mode": UpdateMode.MERGE}
        login_row = {"PartitionKey": partition, "RowKey": email_row_key(account.email), **changes}
        account_row = {"PartitionKey": partition, "RowKey": user_row_key(account.user_id), **changes}
        self._transact(
            [("update", login_row, merge), ("update", account_row, merge | _unchanged(account.etag))],
            "disable account" if disabled else "enable account",
        )

    def change_password(
        self,
        account: Account,
        credentials: Credentials,
        password_hash: str,
        session_for_version: Callable[[int], dict[str, Any]] | None = None,
    ) -> int:
        """Store a new hash, clear the consecutive failures, and revoke every earlier token,
        if neither row changed since read.

        ``session_for_version`` gives the account row property of the new
        session of the device that made the change, for the new session version.

        :returns: the new session version, for the caller's fresh token.
        :raises ConflictError: another request changed the account first; nothing written.
        """
        new_version = max(account.session_version, credentials.session_version) + 1
        changes = {"SessionVersion": new_version}
        self._update_both(
            account,
            credentials,
            changes,
            "change password",
            password_hash=password_hash,
            account_extra=session_for_version(new_version) if session_for_version else None,
        )
        return new_version

    def delete(self, account: Account, credentials: Credentials) -> None:
        """Delete the rows of an account, its second factor and its codes, if unchanged since read.

        The email is free to register again.

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
                {"PartitionKey": partition, "RowKey": user_row_key(account.user_id)},
                _unchanged(account.etag),
            ),
        ]
        operations += [("delete", keys) for keys in self._owned_rows(account)]
        self._transact(operations, "delete account")
        if partition_for_user_id(account.user_id) != partition:
            self.delete_alias(account.user_id)

    def _owned_rows(self, account: Account) -> list[dict[str, str]]:
        """The keys of the account's other rows in its partition: its second factor and its email's codes.

        One query (the partition's code rows and the second-factor row).
        """
        partition = partition_for_email(account.email)
        query = "PartitionKey eq @partition and (RowKey eq @mfa or (RowKey ge 'code:' and RowKey lt 'code;'))"
        parameters = {"partition": partition, "mfa": mfa_row_key(account.user_id)}
        suffix = email_row_key(account.email).removeprefix("email:")
        with storage_errors("list owned rows"):
            rows = self._table().query_entities(query, parameters=parameters, select=["RowKey"])
            keys = [str(row["RowKey"]) for row in rows]
        owned = [key for key in keys if key == mfa_row_key(account.user_id) or key.endswith(":" + suffix)]
        return [{"PartitionKey": partition, "RowKey": key} for key in owned]

    def import_legacy(
        self,
        user_id: str,
        email: str,
        stored_hash: str,
        created_at: datetime,
        *,
        email_verified: bool = False,
    ) -> ImportOutcome:
        """Store an account imported from Mobile Services, keeping its user id; never overwrite.

        Safe to repeat: an account already imported, or one that registered or
        changed since, is left exactly as it is.

        :raises StorageUnavailable: storage could not be reached (repeat later).
        """
        if not self._claim_alias(user_id, email):
            return ImportOutcome.USER_ID_TAKEN
        login_row, account_row = account_rows(
            user_id, email, stored_hash, created_at, email_verified=email_verified
        )
        if self._create_or_claim(login_row, account_row, "import account") is not None:
            return ImportOutcome.IMPORTED
        existing = self.credentials(email)
        if existing is not None and existing.user_id == user_id:
            return ImportOutcome.ALREADY_IMPORTED
        self.delete_alias(user_id)
        return ImportOutcome.EMAIL_TAKEN

    # Changes allowed by a one-time code: each is one transaction that also uses the code up.

    def reset_password(
        self,
        credentials: Credentials,
        password_hash: str,
        use_code: Operation,
        *,
        clear_failures: bool = True,
    ) -> int:
        """Store a new hash, revoke every token, clear the lockout (unless ``clear_failures`` is false)
        and mark the email verified, using the code up, in one transaction guarded by the login row's ETag.

        :returns: the new session version.
        :raises ConflictError: the account or the code changed since read; nothing written.
        """
        new_version = credentials.session_version + 1
        changes = {"SessionVersion": new_version, "EmailVerified": True}
        login_changes: dict[str, Any] = changes | {"PasswordHash": password_hash}
        if clear_failures:
            login_changes |= {
                "FailedLogins": 0,
                "LockedUntil": _NEVER,
                "FailureWindowStart": _NEVER,
                "FailureWindowCount": 0,
            }
        self._change_with_code(credentials, login_changes, changes, use_code, "reset password")
        return new_version

    def mark_verified(self, credentials: Credentials, use_code: Operation) -> None:
        """Mark the account's email verified, using the code up, in one transaction.

        :raises ConflictError: the account or the code changed since read; nothing written.
        """
        changes = {"EmailVerified": True}
        self._change_with_code(credentials, changes, changes, use_code, "verify email")

    def _change_with_code(
        self,
        credentials: Credentials,
        login_changes: dict[str, Any],
        account_changes: dict[str, Any],
        use_code: Operation,
        operation: str,
    ) -> None:
        partition = partition_for_email(credentials.email)
        merge = {"mode": UpdateMode.MERGE}
        login_row = {"PartitionKey": partition, "RowKey": email_row_key(credentials.email), **login_changes}
        account_row = {
            "PartitionKey": partition,
            "RowKey": user_row_key(credentials.user_id),
            **account_changes,
        }
        self._transact(
            [
                ("update", login_row, merge | _unchanged(credentials.etag)),
                ("update", account_row, merge),  # must exist (If-Match: *)
                use_code,
            ],
            operation,
        )

    # The second factor: one row per account beside its account row.

    def mfa_record(self, account: Account) -> MfaRecord:
        """Read the second-factor row of ``account`` (an empty record if it has none): one point read."""
        partition = partition_for_email(account.email)
        entity = self._get(partition, mfa_row_key(account.user_id), "read second factor")
        if entity is None:
            return MfaRecord(account.user_id, partition)
        return _mfa_record(account.user_id, partition, entity)

    def mfa_pages(
        self, *, page_size: int, continuation: dict[str, str] | None = None
    ) -> Iterator[tuple[list[MfaRecord], dict[str, str] | None]]:
        """Every second-factor row of the table, a page at a time, from ``continuation`` (``None``: start).

        Yields each page with the continuation of the page after it (``None`` after the last).
        """
        query = self._table().query_entities(
            "RowKey ge @low and RowKey lt @high",
            parameters={"low": "mfa:", "high": "mfa;"},
            results_per_page=page_size,
        )
        pages: Any = query.by_page(continuation_token=continuation)  # type: ignore[arg-type]  # a dict
        while True:
            with storage_errors("list second factors"):
                try:
                    entities = list(next(pages))
                except StopIteration:
                    return
            records = [
                _mfa_record(_decode_key(e["RowKey"][len("mfa:") :]), e["PartitionKey"], e) for e in entities
            ]
            following: dict[str, str] | None = pages.continuation_token or None
            yield records, following
            if following is None:
                return

    def mfa_record_again(self, record: MfaRecord) -> MfaRecord | None:
        """Read ``record``'s row again (after a lost write), or ``None`` if it is gone."""
        entity = self._get(record.partition, mfa_row_key(record.user_id), "read second factor")
        return None if entity is None else _mfa_record(record.user_id, record.partition, entity)

    def save_mfa(self, record: MfaRecord, **changes: Any) -> bool:
        """Write ``changes`` (row properties) to the second-factor row if unchanged since read.

        :returns: ``False`` when another request wrote the row first (nothing written).
        """
        entity = {"PartitionKey": record.partition, "RowKey": mfa_row_key(record.user_id), **changes}
        return self._write_if_unchanged(entity, record.etag, "write second factor")

    def spend_challenge_try(self, record: MfaRecord) -> MfaRecord | None:
        """Count one more code tried with the row's challenge, if the row is unchanged since read.

        :returns: the row as written (with its new ETag), or ``None`` when another request
            wrote the row first (nothing written; read again).
        """
        tries = record.challenge_tries + 1
        entity = {
            "PartitionKey": record.partition,
            "RowKey": mfa_row_key(record.user_id),
            "ChallengeTries": tries,
        }
        if record.etag is None:
            return None
        with storage_errors("count second-factor try"):
            try:
                metadata = self._table().update_entity(
                    entity, mode=UpdateMode.MERGE, **_unchanged(record.etag)
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return dataclasses.replace(record, challenge_tries=tries, etag=metadata["etag"])

    def change_mfa(
        self,
        account: Account,
        record: MfaRecord,
        mfa_changes: dict[str, Any] | None,
        *,
        enabled: bool | None = None,
        recovery_codes_left: int | None = None,
        revoke_sessions: bool = False,
        clear_failures: bool = False,
    ) -> int:
        """Change the second-factor row (``None``: delete it) and the account's flags in one transaction.

        The row is guarded by its ETag (so a code is used once), the account row too.
        ``clear_failures`` also starts the login row's consecutive failure count again
        (a login's second step succeeded).

        :returns: the session version after the change.
        :raises ConflictError: either row changed since read; nothing written.
        """
        if record.etag is None:
            raise ConflictError()
        partition = record.partition
        version = account.session_version + (1 if revoke_sessions else 0)
        flags: dict[str, Any] = {}
        if enabled is not None:
            flags["MfaTotp"] = enabled
        if revoke_sessions:
            flags["SessionVersion"] = version
        account_changes = dict(flags)
        if recovery_codes_left is not None:
            account_changes["RecoveryCodesLeft"] = recovery_codes_left
        mfa_keys = {"PartitionKey": partition, "RowKey": mfa_row_key(record.user_id)}
        merge = {"mode": UpdateMode.MERGE}
        operations: list[Operation] = [
            ("delete", mfa_keys, _unchanged(record.etag))
            if mfa_changes is None
            else ("update", mfa_keys | mfa_changes, merge | _unchanged(record.etag))
        ]
        if account_changes:
            account_row = {
                "PartitionKey": partition,
                "RowKey": user_row_key(account.user_id),
                **account_changes,
            }
            operations.append(("update", account_row, merge | _unchanged(account.etag)))
        login_changes = dict(flags)
        if clear_failures:
            login_changes |= {"FailedLogins": 0, "LockedUntil": _NEVER}
        if login_changes:
            login_row = {"PartitionKey": partition, "RowKey": email_row_key(account.email), **login_changes}
            operations.append(("update", login_row, merge))
        self._transact(operations, "change second factor")
        return version

    # Email change: a move of the account's rows to the new email's partition.

    def move_email(self, account: Account, new_email: str, use_code: Operation) -> MoveOutcome:
        """Move ``account`` to ``new_email`` (verified), using the code up; see the module's docstring.

        :raises ConflictError: the account or the code changed since read; nothing written.
        :raises StorageUnavailable: storage failed part way; :meth:`resume_move` finishes the move.
        """
        old_partition = partition_for_email(account.email)
        if partition_for_email(new_email) == old_partition:
            return self._move_within_partition(account, new_email, use_code)
        login = self._get(old_partition, email_row_key(account.email), "read login")
        if login is None or login.get("UserId") != account.user_id:
            raise ConflictError()
        marks = {"mode": UpdateMode.MERGE}
        self._transact(
            [
                (
                    "update",
                    {"PartitionKey": old_partition, "RowKey": login["RowKey"], "MovingTo": new_email},
                    marks | _unchanged(login.metadata["etag"]),
                ),
                (
                    "update",
                    {
                        "PartitionKey": old_partition,
                        "RowKey": user_row_key(account.user_id),
                        "MovingTo": new_email,
                    },
                    marks | _unchanged(account.etag),
                ),
                use_code,
            ],
            "begin email change",
        )
        return self.resume_move(account.user_id, account.email, new_email)

    def resume_move(self, user_id: str, old_email: str, new_email: str) -> MoveOutcome:
        """Take a move of ``user_id`` from ``old_email`` to ``new_email`` to its end, from any step.

        Safe to call any number of times, from any instance, concurrently.

        :raises StorageUnavailable: storage failed; call again.
        """
        old_partition, new_partition = partition_for_email(old_email), partition_for_email(new_email)
        old_login = self._get(old_partition, email_row_key(old_email), "read old login")
        old_account = self._get(old_partition, user_row_key(user_id), "read old account")
        old_mfa = self._get(old_partition, mfa_row_key(user_id), "read old second factor")
        marked = (
            old_login is not None
            and old_login.get("UserId") == user_id
            and old_login.get("MovingTo") == new_email
            and old_account is not None
        )
        new_login = self._get(new_partition, email_row_key(new_email), "read new login")
        copied = new_login is not None and new_login.get("UserId") == user_id
        if not marked and not copied:
            return MoveOutcome.NOTHING
        if marked and not copied:
            login_row, account_row = _moved_rows(old_login, old_account, new_email)
            extra = [] if old_mfa is None else [_in_partition(old_mfa, new_partition)]
            if self._create_or_claim(login_row, account_row, "copy account", extra) is None:
                self._unmark(old_partition, old_login, old_account)
                log_event("email_change_undone", user_id=user_id, reason="email_taken")
                return MoveOutcome.EMAIL_TAKEN
        self._point_alias(user_id, new_email)
        if marked:
            # The commit point: from here on only the new email logs in.
            old_rows = [email_row_key(old_email), user_row_key(user_id)]
            old_rows += [] if old_mfa is None else [mfa_row_key(user_id)]
            self._delete_rows(old_partition, old_rows, "commit email change")
        cleared = {"MovedFrom": ""}
        self._merge_existing(new_partition, [email_row_key(new_email), user_row_key(user_id)], cleared)
        return MoveOutcome.MOVED

    def _move_within_partition(self, account: Account, new_email: str, use_code: Operation) -> MoveOutcome:
        """Both emails share a partition: the whole move is one transaction."""
        partition = partition_for_email(account.email)
        login = self._get(partition, email_row_key(account.email), "read login")
        if login is None or login.get("UserId") != account.user_id:
            raise ConflictError()
        target = self._get(partition, email_row_key(new_email), "read new login")
        if target is not None and "UserId" in target:
            return MoveOutcome.EMAIL_TAKEN
        new_login = {k: v for k, v in login.items() if k not in ("MovingTo", "MovedFrom")}
        new_login |= {"RowKey": email_row_key(new_email), "Email": new_email, "EmailVerified": True}
        if target is None:
            write_new: Operation = ("create", new_login)
        else:  # a placeholder holding a failure record: take it over
            write_new = (
                "update",
                new_login,
                {"mode": UpdateMode.REPLACE, **_unchanged(target.metadata["etag"])},
            )
        account_row = {
            "PartitionKey": partition,
            "RowKey": user_row_key(account.user_id),
            "Email": new_email,
            "EmailVerified": True,
        }
        try:
            self._transact(
                [
                    (
                        "delete",
                        {"PartitionKey": partition, "RowKey": login["RowKey"]},
                        _unchanged(login.metadata["etag"]),
                    ),
                    write_new,
                    ("update", account_row, {"mode": UpdateMode.MERGE, **_unchanged(account.etag)}),
                    use_code,
                ],
                "change email",
            )
        except ConflictError:
            target = self._get(partition, email_row_key(new_email), "read new login")
            if target is not None and "UserId" in target and target["UserId"] != account.user_id:
                return MoveOutcome.EMAIL_TAKEN
            raise
        return MoveOutcome.MOVED

    def _unmark(self, partition: str, login: Any, account: Any) -> None:
        """Undo the first step of a move whose new email was taken."""
        unmarked = {"mode": UpdateMode.MERGE}
        with contextlib.suppress(ConflictError):  # unmarked already, by another resumption
            self._transact(
                [
                    (
                        "update",
                        {"PartitionKey": partition, "RowKey": login["RowKey"], "MovingTo": ""},
                        unmarked | _unchanged(login.metadata["etag"]),
                    ),
                    (
                        "update",
                        {"PartitionKey": partition, "RowKey": account["RowKey"], "MovingTo": ""},
                        unmarked | _unchanged(account.metadata["etag"]),
                    ),
                ],
                "undo email change",
            )

    def _point_alias(self, user_id: str, email: str) -> None:
        """Make the alias row of ``user_id`` name the partition of ``email`` (none is needed at home)."""
        partition = partition_for_email(email)
        self._alias_partitions.pop(user_id, None)
        if partition_for_user_id(user_id) == partition:
            with storage_errors("delete alias"):
                self._table().delete_entity(*alias_keys(user_id))
            return
        with storage_errors("write alias"):
            self._table().upsert_entity(self._alias_row(user_id, email), mode=UpdateMode.REPLACE)

    def _delete_rows(self, partition: str, row_keys: list[str], operation: str) -> None:
        """Delete those of ``row_keys`` that still exist, together."""
        with contextlib.suppress(ConflictError):  # deleted already, by another resumption
            self._transact(
                [("delete", {"PartitionKey": partition, "RowKey": key}) for key in row_keys], operation
            )

    def _merge_existing(self, partition: str, row_keys: list[str], changes: dict[str, Any]) -> None:
        merge = {"mode": UpdateMode.MERGE}
        operations: list[Operation] = [
            ("update", {"PartitionKey": partition, "RowKey": key, **changes}, merge) for key in row_keys
        ]
        with contextlib.suppress(ConflictError):  # finished already, or deleted since
            self._transact(operations, "finish email change")

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

    def create_imported(
        self, accounts: list[tuple[str, str, str, datetime]], *, email_verified: bool = False
    ) -> bool:
        """Create legacy accounts (user id, email, stored hash, created), all of one partition, atomically.

        :returns: ``False`` if any of their rows exists (nothing was written).
        """
        operations = []
        for user_id, email, stored_hash, created_at in accounts:
            login_row, account_row = account_rows(
                user_id, email, stored_hash, created_at, email_verified=email_verified
            )
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
        self,
        login_row: dict[str, Any],
        account_row: dict[str, Any],
        operation: str,
        extra_rows: list[dict[str, Any]] | None = None,
    ) -> list[Mapping[str, Any]] | None:
        """Insert both rows of a new account, taking over a placeholder login row if one exists.

        :returns: the transaction's results, or ``None`` if the email has an account.
        """
        with storage_errors(operation):
            answer_lost = False
            try:
                return self._table().submit_transaction(
                    [
                        ("create", login_row),
                        ("create", account_row),
                        *(("create", r) for r in extra_rows or []),
                    ]
                )
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
                    + [("create", r) for r in extra_rows or []]
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

    def _legacy_partition(self, user_id: str, *, refresh: bool = False) -> str | None:
        partition = None if refresh else self._alias_partitions.get(user_id)
        if partition is None:
            self._alias_partitions.pop(user_id, None)
            alias = self._get(*alias_keys(user_id), "read alias")
            if alias is None:
                return None
            partition = str(alias["AccountPartition"])
            if len(self._alias_partitions) >= _ALIAS_CACHE_LIMIT:
                self._alias_partitions.clear()
            self._alias_partitions[user_id] = partition
        return partition

    def delete_alias(self, user_id: str) -> None:
        """Remove the alias row of a legacy user id (no error when it is already gone)."""
        self._alias_partitions.pop(user_id, None)
        with storage_errors("delete alias"):
            self._table().delete_entity(*alias_keys(user_id))  # no error when it is already gone

    def _update_both(
        self,
        account: Account,
        credentials: Credentials | None,
        changes: dict[str, Any],
        operation: str,
        *,
        password_hash: str | None = None,
        account_extra: dict[str, Any] | None = None,
    ) -> None:
        partition = partition_for_email(account.email)
        login_changes = dict(changes)
        if password_hash is not None:
            # A new password was given with the right current one: failures before it no longer count.
            login_changes |= {"PasswordHash": password_hash, "FailedLogins": 0, "LockedUntil": _NEVER}
        login_row = {"PartitionKey": partition, "RowKey": email_row_key(account.email), **login_changes}
        account_row = {
            "PartitionKey": partition,
            "RowKey": user_row_key(account.user_id),
            **changes,
            **(account_extra or {}),
        }
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

    def _write_if_unchanged(self, entity: dict[str, Any], etag: str | None, operation: str) -> bool:
        """Create ``entity`` (no ``etag``: it must not exist) or merge it into the row read with ``etag``.

        :returns: ``False`` when another request wrote the row first (nothing written).
        """
        with storage_errors(operation):
            try:
                if etag is None:
                    self._table().create_entity(entity)
                else:
                    self._table().update_entity(entity, mode=UpdateMode.MERGE, **_unchanged(etag))
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

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


def _mfa_record(user_id: str, partition: str, entity: Any) -> MfaRecord:
    digests = json.loads(entity.get("RecoveryCodes") or "[]")
    last_step = entity.get("LastStep", -1)
    return MfaRecord(
        user_id=user_id,
        partition=partition,
        secret=entity.get("Secret") or None,
        pending=entity.get("Pending") or None,
        last_step=int(last_step) if last_step is not None and int(last_step) >= 0 else None,
        recovery_digests=tuple(str(d) for d in digests),
        challenge=entity.get("Challenge") or None,
        challenge_expires=_instant(entity.get("ChallengeExpires")),
        challenge_tries=int(entity.get("ChallengeTries") or 0),
        recovery_key=entity.get("RecoveryKey") or None,
        etag=entity.metadata["etag"],
    )


def _decode_key(value: str) -> str:
    """Undo :func:`encode_key`."""
    return re.sub(r"%([0-9A-F]{2})", lambda match: chr(int(match[1], 16)), value)


def _account(user_id: str, entity: Mapping[str, Any]) -> Account:
    created_at: datetime = entity["CreatedAt"]
    return Account(
        user_id=user_id,
        email=entity["Email"],
        created_at=created_at,
        session_version=entity.get("SessionVersion", 0),
        etag=entity.metadata["etag"],  # type: ignore[attr-defined]
        email_verified=bool(entity.get("EmailVerified", False)),
        moving_to=entity.get("MovingTo") or None,
        moved_from=entity.get("MovedFrom") or None,
        mfa_totp=bool(entity.get("MfaTotp", False)),
        recovery_codes_left=int(entity.get("RecoveryCodesLeft", 0)),
        disabled=bool(entity.get("Disabled", False)),
        disabled_reason=entity.get("DisabledReason") or None,
        sessions=sessions_in(entity),
        raw=dict(entity),
    )


def _in_partition(entity: Mapping[str, Any], partition: str) -> dict[str, Any]:
    return dict(entity) | {"PartitionKey": partition}


def _moved_rows(
    login: Mapping[str, Any], account: Mapping[str, Any], new_email: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rows of a moving account in its new partition, marked until the move is finished."""
    partition = partition_for_email(new_email)
    moved = {"Email": new_email, "EmailVerified": True, "MovedFrom": login["Email"]}
    login_row = {k: v for k, v in login.items() if k != "MovingTo"} | moved
    login_row |= {"PartitionKey": partition, "RowKey": email_row_key(new_email)}
    account_row = {k: v for k, v in account.items() if k != "MovingTo"} | moved
    account_row |= {"PartitionKey": partition}
    return login_row, account_row


def _instant(value: datetime | None) -> datetime | None:
    return None if value is None or value <= _NEVER else value


def _unchanged(etag: str) -> dict[str, Any]:
    """The condition of a write that must fail if the row changed since it was read (If-Match)."""
    return {"etag": etag, "match_condition": MatchConditions.IfNotModified}
