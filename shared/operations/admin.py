"""Operator actions on one account: what ``python -m tools.admin`` does.

Each action finds the account (by email or user id), reads what it needs, and
writes with the same guarded writes the functions use: a write that loses an
ETag race to a request of the app reads again and retries, so an action never
undoes a concurrent change nor is silently undone by one. Each change (and an
export, which discloses) is logged as ``admin_<action>`` with the user id.

Nothing here returns a password hash, a second-factor secret, a recovery code,
a code digest or a token: :meth:`AccountAdmin.export` leaves out
:data:`WITHHELD` and names what it left out.

A little over 400 lines: one class whose methods are the tool's commands, one
short method each, kept together so the tool's whole surface reads in one
place. Re-encrypting the second factors is :mod:`shared.operations.reencryption`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import EntityProperty, TableClient, TableEntity, TableTransactionError

from shared.accounts.emails import normalize_email
from shared.accounts.service import AccountService
from shared.accounts.store import (
    LEGACY_USER_ID_PREFIX,
    Account,
    AccountStore,
    alias_keys,
    email_row_key,
    mfa_row_key,
    partition_for_email,
    user_row_key,
)
from shared.errors import ConflictError, NotFound
from shared.events import log_event
from shared.mfa.store import MfaStore, mfa_store
from shared.operations.reencryption import Reencryption, reencrypt
from shared.passkeys.account_row import passkey_count
from shared.passkeys.credentials import PasskeyStore
from shared.passkeys.management import passkey_json
from shared.recovery.codes import CodePurpose
from shared.sessions.devices import SESSION_PROPERTY_PREFIX, DeviceSession, sessions_in
from shared.settings.mail import MailKind
from shared.storage import storage_errors, table_client
from shared.storage.outbox import MailRequest
from shared.throttling.lockout import LoginThrottle

__all__ = ["MAX_ATTEMPTS", "WITHHELD", "AccountAdmin", "MfaReset", "Reencryption", "StoredRows", "is_email"]

#: An action that keeps losing ETag races to the app's requests gives up after this many reads.
MAX_ATTEMPTS = 10
#: Properties an export never shows: secrets, and what would let a copy test guesses.
WITHHELD = frozenset(
    {"PasswordHash", "Secret", "Pending", "RecoveryCodes", "RecoveryKey", "Digest", "Challenge"}
)
#: Stored for "no such instant" (see :mod:`shared.accounts.store`).
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)

T = TypeVar("T")


def is_email(name: str) -> bool:
    """Whether an operator's ``name`` of an account is an email (else a user id).

    A name with ``@`` is an email, unless it starts with ``custom:`` (any case):
    an imported user id may contain ``@``, and no email starts so.
    """
    return "@" in name and name[: len(LEGACY_USER_ID_PREFIX)].lower() != LEGACY_USER_ID_PREFIX.lower()


class MfaReset(Enum):
    """What resetting the second factor found and did."""

    REMOVED = "removed"
    #: Only an enrolment that was never confirmed: removed, no notice sent.
    PENDING_REMOVED = "pending enrolment removed"
    NONE = "no second factor"


@dataclass(frozen=True)
class StoredRows:
    """Every row stored about one account, as read (with their ETags)."""

    login: TableEntity | None = None
    account: TableEntity | None = None
    second_factor: TableEntity | None = None
    codes: list[TableEntity] = field(default_factory=list)
    alias: TableEntity | None = None

    def in_partition(self) -> list[TableEntity]:
        """The rows in the account's partition (one transaction can delete them all)."""
        rows = [self.login, self.account, self.second_factor, *self.codes]
        return [row for row in rows if row is not None]

    def __bool__(self) -> bool:
        return bool(self.in_partition()) or self.alias is not None


class AccountAdmin:
    """Operator actions, with the app's settings, store and outbox."""

    def __init__(self, service: AccountService) -> None:
        self.service = service
        self.store: AccountStore = service.store
        self.mfa: MfaStore = mfa_store(service.settings.storage)

    # Finding the account.

    def find(self, name: str) -> Account:
        """The account named by an email or a user id.

        An account whose email change was interrupted is first taken to the end
        of the change (as its next login would), so that its rows are in one place.

        :raises InvalidRequest: ``name`` is an email, and not a valid one.
        :raises NotFound: no such account.
        """
        if is_email(name):
            email = normalize_email(name)
            credentials = self.store.credentials(email)
            account = self.store.account(credentials.user_id) if credentials else None
            missing = f"no account with email {email}"
        else:
            account = self.store.account(name.strip()) if name.strip() else None
            missing = f"no account with user id {name.strip()!r}"
        if account is not None and account.in_move:
            old, new = account.moved_from or account.email, account.moving_to or account.email
            self.store.resume_move(account.user_id, old, new)
            account = self.store.account(account.user_id)
        if account is None:
            raise NotFound(missing)
        return account

    def _again(self, account: Account) -> Account:
        fresh = self.store.account(account.user_id)
        if fresh is None:
            raise NotFound(f"the account {account.user_id} was deleted meanwhile")
        return fresh

    def _retrying(self, account: Account, change: Callable[[Account], T]) -> T:
        """Run ``change`` on ``account``; on a lost race, on the account read again."""
        for _ in range(MAX_ATTEMPTS):
            try:
                return change(account)
            except ConflictError:
                account = self._again(account)
        raise ConflictError("the account kept changing; run the command again")

    # Reading.

    def summary(self, account: Account) -> dict[str, Any]:
        """What ``show`` tells: no hash, secret, code or token."""
        throttle = self.store.login_record(account.email).throttle
        locked_until = throttle.refused_until(self.service.settings.lockout, datetime.now(UTC))
        return {
            "userId": account.user_id,
            "email": account.email,
            "emailVerified": account.email_verified,
            "createdAt": _iso(account.created_at),
            "disabled": account.disabled,
            "disabledReason": account.disabled_reason,
            "lockout": {
                "failedLogins": throttle.consecutive_failures,
                "lockedUntil": _iso(locked_until) if locked_until else None,
            },
            "mfa": {"totp": account.mfa_totp, "recoveryCodesLeft": account.recovery_codes_left},
            "liveSessions": len(account.live_sessions),
            "passkeys": passkey_count(account),
        }

    def sessions(self, account: Account) -> list[dict[str, Any]]:
        """The live sessions, newest first."""
        return [_session(s) for s in sorted(account.live_sessions, key=lambda s: s.created_at, reverse=True)]

    def rows(self, account: Account) -> StoredRows:
        """Read every row of the account: login, account, second factor, codes, alias.

        The code rows are those of its email while the email is the account's
        (its login row is), else only those issued for the account.
        """
        table = self._table()
        partition = partition_for_email(account.email)
        with storage_errors("read account rows"):
            login = _get(table, partition, email_row_key(account.email))
            if login is not None and login.get("UserId") != account.user_id:
                login = None  # the email has another account now
            codes = [
                code
                for purpose in CodePurpose
                if (code := _get(table, partition, code_row_key(purpose, account.email))) is not None
                and (login is not None or code.get("UserId") == account.user_id)
            ]
            return StoredRows(
                login=login,
                account=_get(table, partition, user_row_key(account.user_id)),
                second_factor=_get(table, partition, mfa_row_key(account.user_id)),
                codes=codes,
                alias=_get(table, *alias_keys(account.user_id)),
            )

    def export(self, account: Account) -> dict[str, Any]:
        """Everything stored about the account (GDPR articles 15 and 20), secrets left out.

        Each row lists the properties it ``withheld``; sessions are decoded, the
        recovery codes are only counted, the passkeys listed as the API shows them,
        and instants are ISO 8601 (UTC).
        """
        rows = self.rows(account)
        account_row = None
        if rows.account is not None:
            account_row = _render(rows.account)
            version = int(rows.account.get("SessionVersion", 0))
            account_row["Sessions"] = [
                _session(s) | {"amr": list(s.amr), "live": s.version == version}
                for s in sorted(sessions_in(rows.account), key=lambda s: s.created_at)
            ]
        second_factor = None
        if rows.second_factor is not None:
            second_factor = _render(rows.second_factor)
            digests = json.loads(str(rows.second_factor.get("RecoveryCodes") or "[]"))
            second_factor["RecoveryCodesLeft"] = len(digests)
        passkeys = PasskeyStore(self.service.settings.storage).list(account)
        log_event("admin_export", user_id=account.user_id)
        return {
            "exportedAt": _iso(datetime.now(UTC)),
            "userId": account.user_id,
            "email": account.email,
            "login": _render(rows.login) if rows.login is not None else None,
            "account": account_row,
            "secondFactor": second_factor,
            "codes": [_render(code) for code in rows.codes],
            "alias": _render(rows.alias) if rows.alias is not None else None,
            # Their rows are outside the account's partition; public fields only (the public key is withheld).
            "passkeys": [passkey_json(passkey) for passkey in passkeys],
        }

    # Changing.

    def disable(self, account: Account, reason: str | None) -> Account:
        """Disable the account: its tokens are refused at once, its password no longer logs in."""

        def write(current: Account) -> Account:
            self.store.set_disabled(current, True, reason)
            return current

        done = self._retrying(account, write)
        log_event("account_disabled", user_id=done.user_id)
        log_event("admin_disable", user_id=done.user_id, reason=reason or "-")
        return done

    def enable(self, account: Account) -> bool:
        """Enable a disabled account (its old sessions stay ended). :returns: whether it was disabled."""

        def write(current: Account) -> bool:
            if not current.disabled:
                return False
            self.store.set_disabled(current, False)
            return True

        changed = self._retrying(account, write)
        if changed:
            log_event("account_enabled", user_id=account.user_id)
            log_event("admin_enable", user_id=account.user_id)
        return changed

    def unlock(self, account: Account) -> LoginThrottle | None:
        """Clear the email's failure record (the lockout and the hourly count).

        :returns: the record cleared, or ``None`` when it was clear already.
        """
        for _ in range(MAX_ATTEMPTS):
            record = self.store.login_record(account.email)
            if record.credentials is None or record.credentials.user_id != account.user_id:
                raise NotFound(f"the account {account.user_id} has no login row for {account.email}")
            if record.throttle == LoginThrottle():
                return None
            if self.store.update_login(record, throttle=LoginThrottle()):
                failures = record.throttle.consecutive_failures
                log_event("admin_unlock", user_id=account.user_id, failed_logins=failures)
                return record.throttle
        raise ConflictError("the account kept changing; run the command again")

    def revoke(self, account: Account, session_id: str | None) -> None:
        """End one live session, or every session (tokens from before sessions per device too).

        :raises NotFound: ``session_id`` is no live session of the account.
        """
        if session_id is not None:
            self.service.end_session(account, session_id, reason="revoked")
        else:
            self.service.end_all_sessions(account, reason="revoked")
        log_event("admin_revoke", user_id=account.user_id, session=session_id or "all")

    def reset_mfa(self, account: Account) -> MfaReset:
        """Remove the second factor (a lost phone): the password alone logs in again.

        The owner is told by mail (if mail is configured) when a confirmed factor was removed.
        """
        for _ in range(MAX_ATTEMPTS):
            record = self.mfa.mfa_record(account)
            if record.etag is None:
                if not account.mfa_totp:
                    return MfaReset.NONE
                # Flagged on without a row: make an empty row, to remove it with the flags.
                self.mfa.save_mfa(record)
                continue
            was_on = account.mfa_totp or record.secret is not None
            try:
                self.mfa.change_mfa(account, record, None, enabled=False, recovery_codes_left=0)
            except ConflictError:
                account = self._again(account)
                continue
            log_event("admin_reset_mfa", user_id=account.user_id, was="on" if was_on else "pending")
            if not was_on:
                return MfaReset.PENDING_REMOVED
            notice = MailRequest(MailKind.MFA_DISABLED, account.email, user_id=account.user_id)
            self.service.outbox.send_after_change(notice)
            return MfaReset.REMOVED
        raise ConflictError("the account kept changing; run the command again")

    def delete(self, account: Account) -> int:
        """Delete every row of the account (as ``DELETE /api/me``, without its password).

        The rows of its partition go in one transaction, each guarded by the
        ETag it was read with; then its alias row. Reading again until nothing
        is left also removes a code issued meanwhile.

        :returns: how many rows were deleted.
        """
        deleted = 0
        for _ in range(MAX_ATTEMPTS):
            rows = self.rows(account)
            if not rows:
                deleted += PasskeyStore(self.service.settings.storage).delete_all(account)
                log_event("admin_delete", user_id=account.user_id, rows=deleted)
                return deleted
            table = self._table()
            operations = [("delete", row, _unchanged(row)) for row in rows.in_partition()]
            with storage_errors("delete account"):
                try:
                    if operations:
                        table.submit_transaction(operations)
                        deleted += len(operations)
                    if rows.alias is not None:
                        table.delete_entity(rows.alias, **_unchanged(rows.alias))
                        deleted += 1
                except (TableTransactionError, ResourceModifiedError) as error:
                    if getattr(error, "status_code", None) not in (404, 409, 412):
                        raise
                    # Changed since read: read again.
        raise ConflictError("the account kept changing; run the command again")

    def delete_orphan_alias(self, user_id: str) -> bool:
        """Delete the alias row of ``user_id`` if no account is behind it (a delete cut short).

        :returns: whether there was one.
        """
        table = self._table()
        with storage_errors("delete alias"):
            alias = _get(table, *alias_keys(user_id))
            if alias is None or self.store.account(user_id) is not None:
                return False
            try:
                table.delete_entity(alias, **_unchanged(alias))
            except ResourceModifiedError:
                return False
        log_event("admin_delete", user_id=user_id, rows=1)
        return True

    def reencrypt(
        self,
        *,
        dry_run: bool = False,
        page_size: int = 100,
        start: str | None = None,
        after_page: Callable[[Reencryption], None] | None = None,
    ) -> Reencryption:
        """Seal every second-factor row under the current key: :mod:`shared.operations.reencryption`."""
        return reencrypt(
            self.service, self.mfa, dry_run=dry_run, page_size=page_size, start=start, after_page=after_page
        )

    def _table(self) -> TableClient:
        return table_client(self.service.settings.storage)


def code_row_key(purpose: CodePurpose, email: str) -> str:
    """The RowKey of the code row of ``email`` and ``purpose`` (as :mod:`shared.recovery.codes` writes it)."""
    return f"code:{purpose}:" + email_row_key(email).removeprefix("email:")


def _get(table: TableClient, partition: str, row_key: str) -> TableEntity | None:
    try:
        return table.get_entity(partition, row_key)
    except ResourceNotFoundError:
        return None


def _unchanged(row: TableEntity) -> dict[str, Any]:
    return {"etag": row.metadata["etag"], "match_condition": MatchConditions.IfNotModified}


def _session(session: DeviceSession) -> dict[str, Any]:
    return {
        "id": session.id,
        "createdAt": _iso(session.created_at),
        "lastSeenAt": _iso(session.last_seen_at),
        "userAgent": session.user_agent,
    }


def _render(row: TableEntity) -> dict[str, Any]:
    """A row as JSON: secrets withheld (and named), sessions left to the caller, instants in ISO 8601."""
    shown: dict[str, Any] = {}
    withheld: list[str] = []
    for name, value in row.items():
        if name in WITHHELD:
            withheld.append(name)
        elif not name.startswith(SESSION_PROPERTY_PREFIX):
            shown[name] = _plain(value)
    modified = row.metadata.get("timestamp")
    shown["LastModified"] = _iso(modified) if isinstance(modified, datetime) else None
    if withheld:
        shown["withheld"] = sorted(withheld)
    return shown


def _plain(value: Any) -> Any:
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, datetime):
        instant = value if value.tzinfo else value.replace(tzinfo=UTC)
        return None if instant <= _NEVER else _iso(instant)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def _iso(instant: datetime) -> str:
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
