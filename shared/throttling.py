"""Per-account lockout after consecutive failed logins (OWASP ASVS 6.3, NIST SP 800-63B 3.2.2).

After ``threshold`` consecutive failures, an account refuses further attempts
for ``base`` seconds, doubling with each further evaluated failure up to
``maximum``. Refused attempts are not evaluated (no hashing) and change
nothing, so a lock never lasts longer than ``maximum`` after an attacker
stops. Whatever the settings, at most ``hourly_cap`` failures per account per
hour are ever evaluated. A successful login resets the consecutive count.

The state is kept for every email that fails to log in, whether or not it has
an account, so a refusal never reveals that an account exists.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["LockoutPolicy", "LoginThrottle"]

HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """The lockout settings (``AUTH_LOCKOUT_*``); ``threshold`` 0 turns lockout off."""

    threshold: int = 5
    base: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(seconds=900)
    hourly_cap: int = 100

    @property
    def enabled(self) -> bool:
        return self.threshold > 0


@dataclass(frozen=True, slots=True)
class LoginThrottle:
    """The failure record of one email."""

    consecutive_failures: int = 0
    locked_until: datetime | None = None
    window_start: datetime | None = None
    window_failures: int = 0

    def refused_until(self, policy: LockoutPolicy, now: datetime) -> datetime | None:
        """When attempts may be evaluated again, or ``None`` if they may be now."""
        if not policy.enabled:
            return None
        ends = []
        if self.locked_until is not None and self.locked_until > now:
            ends.append(self.locked_until)
        if self.window_start is not None and self.window_failures >= policy.hourly_cap:
            window_end = self.window_start + HOUR
            if window_end > now:
                ends.append(window_end)
        return max(ends) if ends else None

    def after_failure(self, policy: LockoutPolicy, now: datetime) -> LoginThrottle:
        """The record after one more evaluated failure."""
        in_window = self.window_start is not None and now - self.window_start < HOUR
        window_start = self.window_start if in_window else now
        window_failures = (self.window_failures if in_window else 0) + 1
        failures = self.consecutive_failures + 1
        locked_until = self.locked_until
        if policy.enabled and failures >= policy.threshold:
            delay = policy.base * (2 ** min(failures - policy.threshold, 30))
            locked_until = now + min(delay, policy.maximum)
        return LoginThrottle(failures, locked_until, window_start, window_failures)

    def after_success(self) -> LoginThrottle:
        """The record after a successful login: the consecutive count starts again."""
        return dataclasses.replace(self, consecutive_failures=0, locked_until=None)

    @property
    def is_clear(self) -> bool:
        return self.consecutive_failures == 0 and self.locked_until is None
