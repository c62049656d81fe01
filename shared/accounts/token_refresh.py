"""``POST /api/token/refresh``: spend a refresh token for a new access token and the next refresh token.

No access token is needed: the refresh token names its device session and
proves itself (:mod:`shared.tokens.refresh_tokens`). One point read of the
account row tells whether the session is still live (it dies with a logout,
an ended or revoked session, a password change or reset, the idle timeout,
``AUTH_SESSION_MAX_SECONDS``, or a disabled account); one ETag-guarded write
(:mod:`shared.accounts.token_refresh_store`) spends the token.

- The live token: stored successor, a new access token.
- The token spent last, retried within ``AUTH_REFRESH_REUSE_SECONDS`` (or
  the loser of a concurrent redemption): the same successor, a new access token.
- A genuine spent token otherwise: reuse. The device's session ends (event
  ``refresh_token_reused``); other devices stay signed in.
- Anything else: ``400 invalid_grant``.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import UTC, datetime

from shared.accounts.service import AccountService, Session
from shared.accounts.store import Account
from shared.accounts.token_refresh_store import store_rotated_session
from shared.errors import ConflictError, InvalidGrant, NotFound
from shared.events import log_event
from shared.sessions.devices import DeviceSession
from shared.tokens import refresh_tokens
from shared.tokens.access_tokens import issue_token
from shared.tokens.refresh_tokens import Redemption, RefreshState, RefreshToken

__all__ = ["MAX_ROTATION_ATTEMPTS", "redeem"]

#: A redemption that keeps losing the row's ETag to other writes (last-seen times, logins) reads again
#: and retries, up to this many times.
MAX_ROTATION_ATTEMPTS = 10


def redeem(service: AccountService, raw: str) -> Session:
    """Spend the refresh token ``raw``: a new access token and the session's next refresh token.

    :raises InvalidGrant: malformed, unknown, spent (reuse ends the session), or its session is over.
    :raises ConflictError: the row kept changing under the redemption.
    :raises StorageUnavailable: storage could not be reached.
    """
    token = refresh_tokens.parse(raw)
    if token is None:
        raise InvalidGrant("malformed")
    keys = service.settings.tokens.keys
    lost_race = False
    for _ in range(MAX_ROTATION_ATTEMPTS):
        now = datetime.now(UTC)
        account, device, state = _live_session(service, token, now)
        grace = service.settings.signing.refresh_reuse_grace
        outcome = refresh_tokens.classify(keys, token, state, now=now, grace=grace, lost_race=lost_race)
        if outcome is Redemption.ROTATE:
            following = refresh_tokens.successor(keys, token)
            spent = replace(
                device.seen(now),
                refresh_digest=refresh_tokens.digest(keys, following),
                refresh_generation=following.generation,
                refresh_issued_at=now.replace(microsecond=0),
            )
            try:
                store_rotated_session(service.settings.storage, account, spent)
            except ConflictError:
                lost_race = True  # read again: another redemption, or another write of the row
                continue
            log_event("refresh_token_rotated", user_id=account.user_id, session=device.id)
            return _session(service, account, spent, following)
        if outcome is Redemption.RETRY:
            log_event("refresh_token_retried", user_id=account.user_id, session=device.id)
            return _session(service, account, device, refresh_tokens.successor(keys, token))
        if outcome is Redemption.REUSE:
            log_event("refresh_token_reused", logging.WARNING, user_id=account.user_id, session=device.id)
            _end(service, account, device.id)
            raise InvalidGrant("reused")
        raise InvalidGrant("not a token of this session")
    raise ConflictError()


def _live_session(
    service: AccountService, token: RefreshToken, now: datetime
) -> tuple[Account, DeviceSession, RefreshState]:
    """The account and the live device session ``token`` names, and its refresh state.

    :raises InvalidGrant: no such account or live session, or the session is over (idle, too old).
    """
    settings = service.settings
    account = service.store.account(token.user_id)
    if account is None or account.disabled:
        raise InvalidGrant("no account, or disabled")
    device = account.session(token.session_id)
    if device is None or not device.refresh_digest or device.refresh_issued_at is None:
        raise InvalidGrant("session ended")
    if settings.session_max_age is not None and now - device.created_at > settings.session_max_age:
        raise InvalidGrant("session older than AUTH_SESSION_MAX_SECONDS")
    if settings.session_idle is not None and now - device.last_seen_at > settings.session_idle:
        _end(service, account, device.id, reason="idle")
        raise InvalidGrant("session idle")
    state = RefreshState(device.refresh_digest, device.refresh_generation, device.refresh_issued_at)
    return account, device, state


def _end(
    service: AccountService, account: Account, session_id: str, *, reason: str = "refresh_token_reused"
) -> None:
    """End one device session (already ended by another request: nothing to do)."""
    with contextlib.suppress(NotFound):
        service.end_session(account, session_id, reason=reason)


def _session(
    service: AccountService, account: Account, device: DeviceSession, refresh: RefreshToken
) -> Session:
    """A new access token of ``device``, with ``refresh`` as the response's refresh token."""
    token = issue_token(
        service.settings.tokens,
        account.user_id,
        session_version=account.session_version,
        session_started=device.created_at,
        amr=device.amr,
        session_id=device.id,
    )
    return Session(token=token, email=account.email, refresh_token=str(refresh))
