"""Accounts in Azure Table Storage: the account's rows and the reads and writes of the account core.

An account is a login row and an account row in the partition of its email
(:mod:`shared.accounts.rows`; keys and partitions: :mod:`shared.storage.rows`).
New user ids are ``custom:`` + the partition's two hex digits + 22 random
URL-safe characters, so both rows are found by a point read: login by email,
everything else by user id.

``SessionVersion`` is on both rows, so that login (login row) can put it in a
token and the gate (account row) can check it, each with one read. Every change
of it writes both rows in one transaction, each guarded by its ETag.

:class:`AccountStore` is the account core's store: create, read, disable,
change the password, revoke, delete. It also carries the writes other concerns
make on the account's rows, each from its own module: the failure record
(:mod:`shared.throttling.store`), sessions (:mod:`shared.sessions.store`),
imported accounts and their aliases (:mod:`shared.accounts.import_store`,
:mod:`shared.accounts.aliases`) and finishing an email's move
(:mod:`shared.accounts.moves`). The second factor's row is :mod:`shared.mfa.store`'s;
changes made with a code are :mod:`shared.recovery.store`'s.

A little over 400 lines: the three row types (:class:`Credentials`,
:class:`LoginRecord`, :class:`Account`) sit with the store that reads them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import UpdateMode

from shared.accounts.import_store import ImportOutcome, ImportRows
from shared.accounts.moves import MoveOutcome, MoveRows
from shared.accounts.rows import account_rows, create_or_claim
from shared.errors import ConflictError, EmailTaken
from shared.sessions.devices import DeviceSession, sessions_in
from shared.sessions.store import SessionRows
from shared.storage.clients import storage_errors
from shared.storage.rows import (
    LEGACY_USER_ID_PREFIX,
    alias_keys,
    email_row_key,
    encode_key,
    mfa_row_key,
    new_user_id,
    partition_for_email,
    partition_for_user_id,
    unchanged,
    user_row_key,
)
from shared.throttling.lockout import LoginThrottle
from shared.throttling.store import CLEARED_FAILURES, failure_properties, throttle_in

__all__ = [
    "LEGACY_USER_ID_PREFIX",
    "Account",
    "AccountStore",
    "Credentials",
    "ImportOutcome",
    "LoginRecord",
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

_MAX_REVOKE_ATTEMPTS = 10


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


class AccountStore(ImportRows, MoveRows, SessionRows):
    """Reads and writes accounts.

    The request-path methods are one storage round trip each, except where a
    race or a lost answer must be resolved by reading again (their docstrings say).
    """

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
        results = create_or_claim(self, login_row, account_row, "create account")
        if results is None:
            raise EmailTaken()
        return dataclasses.replace(account, etag=results[1]["etag"])

    def credentials(self, email: str) -> Credentials | None:
        """Return the login row of a normalized ``email``, or ``None`` if there is no account."""
        return self.login_record(email).credentials

    def login_record(self, email: str) -> LoginRecord:
        """Read the login row of a normalized ``email``: one point read, account or not."""
        entity = self.get(partition_for_email(email), email_row_key(email), "read credentials")
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
        return LoginRecord(email, credentials, throttle_in(entity), etag)

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
            **failure_properties(throttle),
        }
        if password_hash is not None:
            entity["PasswordHash"] = password_hash
        return self.write_if_unchanged(entity, record.etag, "update login")

    def account(self, user_id: str) -> Account | None:
        """Return the account of ``user_id``, or ``None`` if there is none.

        One point read, in the partition the process last found the account
        in (or the one its user id names). When that partition no longer holds
        it (the account moved with an email change, on this or another
        instance), the alias row is read again and the account looked up there.
        """
        remembered = self._alias_partitions.get(user_id)
        partition = remembered or partition_for_user_id(user_id) or self.legacy_partition(user_id)
        if partition is None:
            return None
        entity = self.get(partition, user_row_key(user_id), "read account")
        if entity is None:
            moved_to = self.legacy_partition(user_id, refresh=True)
            if moved_to is None or moved_to == partition:
                return None
            entity = self.get(moved_to, user_row_key(user_id), "read account")
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

    def touch_session(self, account: Account, session: DeviceSession) -> Account:
        """Record that ``session`` was just used, if the row is unchanged since read (best effort).

        Guarded by the ETag so that a session ended meanwhile is not written back.

        :returns: the account as it is now (its new ETag), for the request's own writes.
        """
        etag = self.write_seen(account.email, account.user_id, account.etag, session)
        if etag is None:
            return account
        sessions = tuple(session if s.id == session.id else s for s in account.sessions)
        raw = {**account.raw, **session.to_property()}
        return dataclasses.replace(account, etag=etag, raw=raw, sessions=sessions)

    def end_sessions(self, account: Account, session_ids: set[str]) -> Account:
        """Rewrite the account row without ``session_ids`` (and without sessions ended before).

        :returns: the account as it is now.
        :raises ConflictError: the row changed since read; read again and retry.
        """
        live = {s.id for s in account.live_sessions} - session_ids
        etag, row = self.write_without(account.raw, account.etag, live)
        sessions = tuple(s for s in account.sessions if s.id in live)
        return dataclasses.replace(account, etag=etag, raw=row, sessions=sessions)

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
        self.transact(
            [("update", login_row, merge), ("update", account_row, merge | unchanged(account.etag))],
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
                unchanged(credentials.etag),
            ),
            (
                "delete",
                {"PartitionKey": partition, "RowKey": user_row_key(account.user_id)},
                unchanged(account.etag),
            ),
        ]
        operations += [("delete", keys) for keys in self._owned_rows(account)]
        self.transact(operations, "delete account")
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
            rows = self.table().query_entities(query, parameters=parameters, select=["RowKey"])
            keys = [str(row["RowKey"]) for row in rows]
        owned = [key for key in keys if key == mfa_row_key(account.user_id) or key.endswith(":" + suffix)]
        return [{"PartitionKey": partition, "RowKey": key} for key in owned]

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
            login_changes |= {"PasswordHash": password_hash, **CLEARED_FAILURES}
        login_row = {"PartitionKey": partition, "RowKey": email_row_key(account.email), **login_changes}
        account_row = {
            "PartitionKey": partition,
            "RowKey": user_row_key(account.user_id),
            **changes,
            **(account_extra or {}),
        }
        # Without credentials, the login row must merely exist (If-Match: *).
        login_condition = unchanged(credentials.etag) if credentials else {}
        merge = {"mode": UpdateMode.MERGE}
        self.transact(
            [
                ("update", login_row, merge | login_condition),
                ("update", account_row, merge | unchanged(account.etag)),
            ],
            operation,
        )


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
