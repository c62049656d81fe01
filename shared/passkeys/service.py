"""This process's passkey service: the settings, the stores, and the accounts it signs in to."""

from __future__ import annotations

from dataclasses import dataclass

from shared.accounts.service import AccountService, account_service
from shared.errors import NotFound
from shared.passkeys.challenges import ChallengeStore
from shared.passkeys.credentials import PasskeyStore
from shared.settings import get_settings
from shared.settings.passkeys import PasskeySettings

__all__ = ["Passkeys", "passkey_settings", "passkeys"]


@dataclass(frozen=True, slots=True)
class Passkeys:
    """What every passkey flow works with."""

    settings: PasskeySettings
    accounts: AccountService
    challenges: ChallengeStore
    store: PasskeyStore


def passkeys() -> Passkeys:
    """The passkey service for the current settings.

    :raises NotFound: passkeys are off (``AUTH_PASSKEY_RP_ID`` is unset): every passkey route is 404.
    :raises SettingError: an app setting is missing or invalid.
    """
    settings = passkey_settings()
    accounts = account_service()
    storage = accounts.settings.storage
    return Passkeys(
        settings, accounts, ChallengeStore(storage, settings.challenge_lifetime), PasskeyStore(storage)
    )


def passkey_settings() -> PasskeySettings:
    """The passkey settings.

    :raises NotFound: passkeys are off.
    :raises SettingError: an app setting is missing or invalid.
    """
    settings = get_settings().passkeys
    if settings is None:
        raise NotFound("No such resource.")
    return settings
