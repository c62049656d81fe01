"""Who a request is: the gate's check of a token, refreshing it, and ending sessions.

One HMAC check and one point read by user id per request (the account row,
which holds the session version and the sessions per device), plus, at most
once a minute per session, a write of its last-seen time. A mixin of
:class:`~shared.accounts.service.AccountService`, whose settings and store it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.accounts.mobile_services import verify_legacy_token
from shared.accounts.store import Account, AccountStore
from shared.errors import ConflictError, InvalidToken, MfaRequired, NotFound
from shared.events import log_event
from shared.sessions.devices import touch_interval
from shared.settings import Settings
from shared.tokens.access_tokens import IssuedToken, VerifiedToken, issue_token, verify_token

__all__ = ["MAX_FAILURE_WRITE_ATTEMPTS", "Authentication", "Session"]

#: Each concurrent failure for one email must be counted (ETag-guarded writes); a writer that
#: keeps losing to others reads again and retries, up to this many times.
MAX_FAILURE_WRITE_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in user: the token and who it is for."""

    token: IssuedToken
    email: str
    #: The session's new refresh token (shared.tokens.refresh_tokens), for the responses that start a session.
    refresh_token: str | None = field(default=None, repr=False)

    @property
    def user_id(self) -> str:
        """The user id the token was issued to."""
        return self.token.user_id


class Authentication:
    """The gate and the session ends of :class:`~shared.accounts.service.AccountService`."""

    settings: Settings
    store: AccountStore

    def authenticate(self, token: str | None, *, require_mfa: bool = False) -> Account:
        """Return the account a request's token stands for.

        Costs one HMAC check and one point read by user id.

        :raises InvalidToken: no token, a token that fails verification, the
            account no longer exists, its sessions were revoked after the
            token was issued, or the session is older than ``AUTH_SESSION_MAX_SECONDS``.
        :raises MfaRequired: ``require_mfa`` and the session has no second factor.
        :raises StorageUnavailable: storage could not be reached.
        """
        account, verified = self.authenticate_session(token)
        if require_mfa and not verified.has_second_factor:
            raise MfaRequired()
        return account

    def authenticate_session(self, token: str | None) -> tuple[Account, VerifiedToken]:
        """As :meth:`authenticate`, with the token's claims (its ``sid`` names the device session).

        One point read (the account row), plus, at most once a minute per
        session, a write of its last-seen time.
        """
        if not token:
            raise InvalidToken("no token")
        verified = self._verify(token)
        now = datetime.now(UTC)
        max_age, started = self.settings.session_max_age, verified.session_started
        if max_age is not None and started is not None and now - started > max_age:
            raise InvalidToken("session older than AUTH_SESSION_MAX_SECONDS")
        account = self.store.account(verified.user_id)
        if account is None:
            raise InvalidToken("no such account")
        if account.disabled:
            raise InvalidToken("account disabled")
        if verified.session_version != account.session_version:
            raise InvalidToken("session revoked")
        if verified.session_id is not None:
            account = self._check_device_session(account, verified.session_id, now)
        return account, verified

    def _check_device_session(self, account: Account, session_id: str, now: datetime) -> Account:
        """Refuse an ended or idle session; note its use; end the least recently used beyond the cap.

        :returns: the account as it is after the last-seen write, if one was made.
        """
        device = account.session(session_id)
        if device is None:
            raise InvalidToken("session ended")
        if len(account.sessions) > len(account.live_sessions):
            # Sessions of an older session version linger on the row until it is rewritten; rewrite it
            # once, so that they cannot pile up towards Table Storage's limit of properties per row.
            account = self._end_quietly(account, set(), reason="revoked")
        idle = self.settings.session_idle
        if idle is not None and now - device.last_seen_at > idle:
            self._end_quietly(account, {device.id}, reason="idle")
            raise InvalidToken("session idle")
        live = account.live_sessions
        if len(live) > self.settings.max_sessions:
            by_use = sorted(live, key=lambda s: (s.last_seen_at, s.created_at))
            evicted = {s.id for s in by_use[: len(live) - self.settings.max_sessions]}
            account = self._end_quietly(account, evicted, reason="evicted")
            if device.id in evicted:
                raise InvalidToken("session evicted")
        elif now - device.last_seen_at >= touch_interval(idle):
            return self.store.touch_session(account, device.seen(now))
        return account

    def _end_quietly(self, account: Account, session_ids: set[str], *, reason: str) -> Account:
        """End sessions the gate found over (a concurrent change of the row wins; a later request retries)."""
        try:
            ended = self.store.end_sessions(account, session_ids)
        except ConflictError:
            return account
        for session_id in session_ids:
            log_event("session_ended", user_id=account.user_id, session=session_id, reason=reason)
        return ended

    def _verify(self, token: str) -> VerifiedToken:
        try:
            return verify_token(self.settings.tokens, token)
        except InvalidToken:
            if self.settings.legacy_tokens is None:
                raise
        # A Mobile Services token of an app installed before the move (AUTH_LEGACY_MASTER_KEY).
        verified = verify_legacy_token(self.settings.legacy_tokens, token)
        log_event("legacy_token_accepted", user_id=verified.user_id)
        return verified

    def refresh(self, token: str | None) -> Session:
        """Trade a valid, unrevoked token for a fresh one of the same session.

        The new token keeps the time the user last gave a password, so
        refreshing cannot stretch a session past ``AUTH_SESSION_MAX_SECONDS``.

        :raises InvalidToken: as :meth:`authenticate`.
        """
        account, verified = self.authenticate_session(token)
        log_event("token_refreshed", user_id=account.user_id)
        started = verified.session_started or datetime.now(UTC)  # a token from before sessions had a start
        token_ = issue_token(
            self.settings.tokens,
            account.user_id,
            session_version=account.session_version,
            session_started=started,
            amr=verified.amr,
            session_id=verified.session_id,
        )
        return Session(token=token_, email=account.email)

    def log_out(self, token: str | None) -> None:
        """End the token's device session; other devices stay signed in.

        A token from before sessions per device (no ``sid``) ends every session
        of the account, as logout did then.
        """
        account, verified = self.authenticate_session(token)
        if verified.session_id is None:
            self.end_all_sessions(account)
        else:
            self.end_session(account, verified.session_id, reason="logout")
        log_event("logged_out", user_id=account.user_id)

    def end_session(self, account: Account, session_id: str, *, reason: str) -> None:
        """End one live session of the account, on every instance at once.

        :raises NotFound: no such live session of this account.
        """
        for _ in range(MAX_FAILURE_WRITE_ATTEMPTS):
            if account.session(session_id) is None:
                raise NotFound("No such session.")
            try:
                self.store.end_sessions(account, {session_id})
            except ConflictError:
                fresh = self.store.account(account.user_id)
                if fresh is None:
                    raise NotFound("No such session.") from None
                account = fresh
                continue
            log_event("session_ended", user_id=account.user_id, session=session_id, reason=reason)
            return
        raise ConflictError()

    def end_all_sessions(self, account: Account, *, reason: str = "revoked") -> None:
        """End every session of the account, tokens from before sessions per device included."""
        self.store.revoke_sessions(account)
        log_event("session_ended", user_id=account.user_id, session="all", reason=reason)
