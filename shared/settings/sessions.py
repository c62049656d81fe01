"""Session settings (``AUTH_SESSION_MAX_SECONDS``, ``AUTH_SESSION_IDLE_SECONDS``, ``AUTH_MAX_SESSIONS``).

Plain values, so only their parsing lives here; :mod:`shared.sessions` applies them.
"""

from __future__ import annotations

from datetime import timedelta

from shared.errors import SettingError
from shared.settings.reader import Reader

__all__ = ["max_sessions", "session_idle", "session_max_age"]

_MAX_LIFETIME_SECONDS = 365 * 86_400
_MIN_IDLE_SECONDS = 4


def session_max_age(reader: Reader) -> timedelta | None:
    """``AUTH_SESSION_MAX_SECONDS``: 0 is no limit."""
    seconds = reader.integer("AUTH_SESSION_MAX_SECONDS", default=7_776_000, minimum=0)
    if 0 < seconds < 60:
        raise SettingError("AUTH_SESSION_MAX_SECONDS", "must be 0 (no limit) or at least 60")
    return timedelta(seconds=seconds) if seconds else None


def session_idle(reader: Reader) -> timedelta | None:
    """``AUTH_SESSION_IDLE_SECONDS``: 0 is off."""
    seconds = reader.integer("AUTH_SESSION_IDLE_SECONDS", default=0, minimum=0, maximum=_MAX_LIFETIME_SECONDS)
    if 0 < seconds < _MIN_IDLE_SECONDS:
        raise SettingError("AUTH_SESSION_IDLE_SECONDS", f"must be 0 (off) or at least {_MIN_IDLE_SECONDS}")
    return timedelta(seconds=seconds) if seconds else None


def max_sessions(reader: Reader) -> int:
    """``AUTH_MAX_SESSIONS``: beyond it, the least recently used session ends."""
    return reader.integer("AUTH_MAX_SESSIONS", default=50, minimum=1, maximum=200)
