"""Sealing every second-factor row again under the current ``AUTH_ENCRYPTION_KEY`` (``reencrypt``).

Paged through the table, resumable with the token each page reports; a row is
rewritten only if unchanged since read, so it runs beside live traffic.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass

from shared.accounts.service import AccountService
from shared.errors import ConflictError, InvalidCode, InvalidRequest
from shared.events import log_event
from shared.mfa.auth import opens, resealed
from shared.mfa.encryption import EncryptionKeys
from shared.mfa.store import MfaRecord, MfaStore

__all__ = ["MAX_ATTEMPTS", "Reencryption", "reencrypt"]

#: A row that keeps changing under a rewrite is read again at most this many times.
MAX_ATTEMPTS = 10


@dataclass
class Reencryption:
    """What :meth:`AccountAdmin.reencrypt` found and did."""

    #: Second-factor rows read.
    examined: int = 0
    #: Rows sealed again under the current key (with ``dry_run``: that would be).
    resealed: int = 0
    #: Rows no configured key opens (left as they are).
    unreadable: int = 0
    #: Where to carry on (``--from``); ``None`` when the whole table was read.
    resume_from: str | None = None


def reencrypt(
    service: AccountService,
    mfa: MfaStore,
    *,
    dry_run: bool = False,
    page_size: int = 100,
    start: str | None = None,
    after_page: Callable[[Reencryption], None] | None = None,
) -> Reencryption:
    """Seal every second-factor row under the current ``AUTH_ENCRYPTION_KEY`` (see ``mfa.auth.resealed``).

    Pages through the table from ``start`` (a :attr:`Reencryption.resume_from` of an earlier
    run; ``None``: the beginning); ``after_page`` sees the counts so far after each page.
    A row is rewritten only if unchanged since read (a lost race reads it again). Rows
    already under the current key are left alone, so a run cut short can be started again
    from the beginning or from where it stopped. ``dry_run`` counts and writes nothing.

    :raises SettingError: ``AUTH_ENCRYPTION_KEY`` is missing or malformed.
    :raises StorageUnavailable: storage could not be reached; resume from the last page reported.
    """
    keys = service.settings.mfa.keys()
    outcome = Reencryption(resume_from=start)
    continuation = _continuation(start)
    for records, following in mfa.mfa_pages(page_size=page_size, continuation=continuation):
        for record in records:
            outcome.examined += 1
            _reseal(mfa, record, keys, outcome, dry_run=dry_run)
        outcome.resume_from = _resume_token(following)
        if after_page is not None:
            after_page(outcome)
    log_event(
        "admin_reencrypt",
        examined=outcome.examined,
        resealed=outcome.resealed,
        unreadable=outcome.unreadable,
        dry_run=dry_run,
    )
    return outcome


def _reseal(
    mfa: MfaStore,
    record: MfaRecord,
    keys: EncryptionKeys,
    outcome: Reencryption,
    *,
    dry_run: bool,
) -> None:
    current: MfaRecord | None = record
    for _ in range(MAX_ATTEMPTS):
        if current is None:
            return  # deleted meanwhile
        try:
            changes = resealed(keys, current)
        except InvalidCode:
            outcome.unreadable += 1  # logged as mfa_secret_unreadable (no key here opens it)
            return
        if not changes:
            if not opens(keys, current):
                outcome.unreadable += 1  # under a key no longer configured
            return
        if dry_run or mfa.save_mfa(current, **changes):
            outcome.resealed += 1
            return
        current = mfa.mfa_record_again(current)
    raise ConflictError("a second-factor row kept changing; run the command again")


def _resume_token(continuation: dict[str, str] | None) -> str | None:
    if not continuation:
        return None
    return base64.urlsafe_b64encode(json.dumps(continuation, sort_keys=True).encode()).decode()


def _continuation(token: str | None) -> dict[str, str] | None:
    """:raises InvalidRequest: not a token an earlier run printed."""
    if token is None:
        return None
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise InvalidRequest("not a --from token of an earlier run") from None
    if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
        raise InvalidRequest("not a --from token of an earlier run")
    return {str(k): v for k, v in document.items()}
