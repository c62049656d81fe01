"""Cleanup settings (``AUTH_CLEANUP_SCHEDULE``, ``AUTH_UNVERIFIED_MAX_DAYS``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.settings.reader import Reader

__all__ = ["CLEANUP_SCHEDULE_SETTING", "CleanupSettings", "cleanup_settings"]

_MAX_UNVERIFIED_DAYS = 3650
#: When ``cleanup`` runs (NCRONTAB, six fields): read by the Functions host from
#: ``cleanup/function.json`` (``%AUTH_CLEANUP_SCHEDULE%``), never by this code. The host
#: reports the function in error while it is unset, so every settings source sets it.
CLEANUP_SCHEDULE_SETTING = "AUTH_CLEANUP_SCHEDULE"


@dataclass(frozen=True, slots=True)
class CleanupSettings:
    """The scheduled cleanup (:mod:`shared.operations.cleanup`), on ``AUTH_CLEANUP_SCHEDULE``.

    ``unverified_max_age`` (``AUTH_UNVERIFIED_MAX_DAYS``): under
    ``AUTH_REQUIRE_VERIFIED_EMAIL``, an account that registered under it and
    whose email is still not verified this long after is deleted, freeing the email.
    """

    unverified_max_age: timedelta = timedelta(days=7)


def cleanup_settings(reader: Reader) -> CleanupSettings:
    """``AUTH_UNVERIFIED_MAX_DAYS``."""
    days = reader.integer("AUTH_UNVERIFIED_MAX_DAYS", default=7, minimum=1, maximum=_MAX_UNVERIFIED_DAYS)
    return CleanupSettings(unverified_max_age=timedelta(days=days))
