"""Throttling rules: per-account lockout and per-client-address rate limits.

Both are pure state and arithmetic; :mod:`shared.accounts.store` and
:mod:`shared.throttling.rate_limiter` keep the state in Table Storage.

Per-account lockout after consecutive failed logins (OWASP ASVS 6.3, NIST SP 800-63B 3.2.2).

After ``threshold`` consecutive failures, an account refuses further attempts
for ``base`` seconds, doubling with each further evaluated failure up to
``maximum``. Refused attempts are not evaluated (no hashing) and change
nothing, so a lock never lasts longer than ``maximum`` after an attacker
stops. Whatever the settings, at most ``hourly_cap`` failures per account per
hour are ever evaluated. A successful login resets the consecutive count; with
a second factor on, a login succeeds only when its second step does, so a right
password alone clears nothing, and wrong codes count like wrong passwords.

The state is kept for every email that fails to log in, whether or not it has
an account, so a refusal never reveals that an account exists.

Per-client-address rate limits: at most ``count`` attempts per ``seconds``,
estimated over a sliding window from two fixed windows (the current one and
the one before, weighted by how much of it still overlaps the sliding window),
so a client cannot double its rate by straddling a window boundary. Refused
attempts are not counted, so a client that slows down is admitted again.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.settings.throttling import AddressLimits, LockoutPolicy, RateLimit

__all__ = ["AddressLimits", "AttemptWindow", "LockoutPolicy", "LoginThrottle", "RateLimit"]

HOUR = timedelta(hours=1)


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
        """The record after a successful login (both steps, with a second factor): the consecutive count
        starts again."""
        return dataclasses.replace(self, consecutive_failures=0, locked_until=None)

    @property
    def is_clear(self) -> bool:
        return self.consecutive_failures == 0 and self.locked_until is None


@dataclass(frozen=True, slots=True)
class AttemptWindow:
    """Counted attempts of one client address: this fixed window's, and the previous one's.

    ``start`` is a whole multiple of the limit's ``seconds`` (Unix time).
    """

    start: int = 0
    count: int = 0
    previous: int = 0

    def at(self, limit: RateLimit, now: float) -> AttemptWindow:
        """The same counts seen from the window that contains ``now``."""
        start = int(now // limit.seconds) * limit.seconds
        if start <= self.start:
            return self
        if start == self.start + limit.seconds:
            return AttemptWindow(start, 0, self.count)
        return AttemptWindow(start, 0, 0)

    def estimate(self, limit: RateLimit, now: float) -> float:
        """Attempts in the ``seconds`` before ``now``: all of this window's, and the overlapping part
        of the previous window's (assuming its attempts were evenly spread)."""
        current = self.at(limit, now)
        overlap = 1 - (now - current.start) / limit.seconds
        return current.count + current.previous * overlap

    def admits(self, limit: RateLimit, now: float) -> bool:
        """Whether one more attempt at ``now`` stays within ``limit``."""
        return self.estimate(limit, now) + 1 <= limit.count

    def after_attempt(self, limit: RateLimit, now: float) -> AttemptWindow:
        """The counts after one more admitted attempt at ``now``."""
        current = self.at(limit, now)
        return dataclasses.replace(current, count=current.count + 1)

    def retry_after(self, limit: RateLimit, now: float) -> int:
        """Whole seconds until an attempt would be admitted (at least 1).

        Counts only fall as the previous window slides out, so the wait is
        where ``count + previous * overlap + 1 <= limit`` first holds: in this
        window if this window's own count leaves room, else in the next one.
        """
        current = self.at(limit, now)
        room = limit.count - 1 - current.count
        if room >= 0:
            start, weight = current.start, current.previous
        else:
            start, weight, room = current.start + limit.seconds, current.count, limit.count - 1
        # weight * (1 - (t - start) / seconds) <= room  <=>  t >= start + seconds * (1 - room / weight)
        fraction = 1 - room / weight if weight else 0.0
        when = start + limit.seconds * max(fraction, 0.0)
        return max(1, math.ceil(when - now))
