"""Throttling settings (``AUTH_LOCKOUT_*``, ``AUTH_RATE_LIMIT_*``, ``AUTH_TRUSTED_PROXY_COUNT``).

The types and their parsing; :mod:`shared.throttling` applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from shared.settings.reader import Reader

__all__ = ["AddressLimits", "LockoutPolicy", "RateLimit", "address_limits", "lockout_policy", "rate"]

_MAX_TRUSTED_PROXIES = 10
_RATE = re.compile(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*")


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
class RateLimit:
    """At most ``count`` attempts per ``seconds`` from one client address; ``count`` 0 turns it off."""

    count: int
    seconds: int = 1

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``COUNT/SECONDS`` (``30/300``), or ``0`` for no limit.

        :raises ValueError: anything else, or a window of 0 seconds.
        """
        if text.strip() == "0":
            return cls(0)
        match = _RATE.fullmatch(text)
        if match is None or int(match[2]) == 0:
            raise ValueError(text)
        return cls(int(match[1]), int(match[2]))

    @property
    def enabled(self) -> bool:
        return self.count > 0

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds}" if self.enabled else "0"


@dataclass(frozen=True, slots=True)
class AddressLimits:
    """The per-client-address settings (``AUTH_RATE_LIMIT_*``, ``AUTH_TRUSTED_PROXY_COUNT``)."""

    register: RateLimit = RateLimit(30, 300)
    login: RateLimit = RateLimit(100, 300)
    #: Proxies of your own in front of the platform's front end, each appending to X-Forwarded-For.
    trusted_proxies: int = 0
    #: Admit attempts (and log it) when the counters cannot be reached, instead of answering 503.
    fail_open: bool = False
    #: Requests that send mail (forgot, verification, email change); code checks count as logins.
    mail: RateLimit = RateLimit(10, 300)


def rate(reader: Reader, name: str, *, default: RateLimit) -> RateLimit:
    """A ``COUNT/SECONDS`` setting (or ``0``)."""
    return reader.parsed(
        name, RateLimit.parse, default=default, problem="is not COUNT/SECONDS (such as 30/300) or 0"
    )


def lockout_policy(reader: Reader) -> LockoutPolicy:
    """``AUTH_LOCKOUT_THRESHOLD``, ``AUTH_LOCKOUT_BASE_SECONDS``, ``AUTH_LOCKOUT_MAX_SECONDS``."""
    base = reader.integer("AUTH_LOCKOUT_BASE_SECONDS", default=1, minimum=1)
    maximum = reader.integer("AUTH_LOCKOUT_MAX_SECONDS", default=900, minimum=base)
    return LockoutPolicy(
        threshold=reader.integer("AUTH_LOCKOUT_THRESHOLD", default=5, minimum=0),
        base=timedelta(seconds=base),
        maximum=timedelta(seconds=maximum),
    )


def address_limits(reader: Reader) -> AddressLimits:
    """``AUTH_RATE_LIMIT_*`` and ``AUTH_TRUSTED_PROXY_COUNT``."""
    defaults = AddressLimits()
    return AddressLimits(
        register=rate(reader, "AUTH_RATE_LIMIT_REGISTER", default=defaults.register),
        login=rate(reader, "AUTH_RATE_LIMIT_LOGIN", default=defaults.login),
        trusted_proxies=reader.integer(
            "AUTH_TRUSTED_PROXY_COUNT",
            default=defaults.trusted_proxies,
            minimum=0,
            maximum=_MAX_TRUSTED_PROXIES,
        ),
        fail_open=reader.boolean("AUTH_RATE_LIMIT_FAIL_OPEN", default=defaults.fail_open),
        mail=rate(reader, "AUTH_RATE_LIMIT_MAIL", default=defaults.mail),
    )
