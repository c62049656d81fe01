"""The failure record of an email: its properties on the email's login row.

``FailedLogins``, ``LockedUntil``, ``FailureWindowStart`` and
``FailureWindowCount`` (see :mod:`shared.throttling.lockout` for what they
mean). An email with no account that fails to log in gets a login row holding
only this record (a placeholder), so that lockout treats known and unknown
emails alike; :mod:`shared.accounts.store` reads and writes the login row, with
these properties from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.storage.rows import NEVER, instant
from shared.throttling.lockout import LoginThrottle

__all__ = ["CLEARED_FAILURES", "NO_FAILURES", "failure_properties", "throttle_in"]

#: A success: the consecutive count starts again (the hourly window stands).
CLEARED_FAILURES: dict[str, Any] = {"FailedLogins": 0, "LockedUntil": NEVER}
#: A fresh start: no failure counted at all (a reset with a mailed code).
NO_FAILURES: dict[str, Any] = CLEARED_FAILURES | {"FailureWindowStart": NEVER, "FailureWindowCount": 0}


def throttle_in(entity: Mapping[str, Any]) -> LoginThrottle:
    """The failure record stored on a login row (a clear one if it has none)."""
    return LoginThrottle(
        consecutive_failures=entity.get("FailedLogins", 0),
        locked_until=instant(entity.get("LockedUntil")),
        window_start=instant(entity.get("FailureWindowStart")),
        window_failures=entity.get("FailureWindowCount", 0),
    )


def failure_properties(throttle: LoginThrottle) -> dict[str, Any]:
    """The login row's properties that store ``throttle``."""
    return {
        "FailedLogins": throttle.consecutive_failures,
        "LockedUntil": throttle.locked_until or NEVER,
        "FailureWindowStart": throttle.window_start or NEVER,
        "FailureWindowCount": throttle.window_failures,
    }
