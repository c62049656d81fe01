"""Reading raw app settings: empty counts as unset, unresolved Key Vault references are refused.

Every parser of :mod:`shared.settings` reads through one :class:`Reader`, so a
bad value raises :class:`~shared.errors.SettingError` naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit

from shared.errors import SettingError

__all__ = ["KEY_VAULT_REFERENCE_PREFIX", "Reader"]

_Choice = TypeVar("_Choice", bound=StrEnum)
_Parsed = TypeVar("_Parsed")

KEY_VAULT_REFERENCE_PREFIX = "@Microsoft.KeyVault("
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class Reader:
    """Reads raw values, treating empty as unset and refusing unresolved Key Vault references."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        if value.startswith(KEY_VAULT_REFERENCE_PREFIX):
            raise SettingError(
                name, "is an unresolved Key Vault reference (check the app's identity and access)"
            )
        return value or None

    def name_in_use(self, name: str, *, fallback: str) -> str:
        return name if self.optional(name) is not None else fallback

    def required(self, name: str, *, fallback: str) -> str:
        value = self.optional(name) or self.optional(fallback)
        if value is None:
            raise SettingError(name, f"is not set (nor is {fallback})")
        return value

    def listed(self, name: str) -> list[str]:
        value = self.optional(name)
        return [item.strip() for item in value.split(",") if item.strip()] if value else []

    def choice(self, name: str, kind: Callable[[str], _Choice], *, default: _Choice) -> _Choice:
        value = self.optional(name)
        if value is None:
            return default
        try:
            return kind(value.lower())
        except ValueError:
            raise SettingError(name, f"has an unknown value {value!r}") from None

    def integer(self, name: str, *, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingError(name, "is not a whole number") from None
        if number < minimum:
            raise SettingError(name, f"must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise SettingError(name, f"must be at most {maximum}")
        return number

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        if value.lower() not in _BOOLEANS:
            raise SettingError(name, "is not true or false")
        return _BOOLEANS[value.lower()]

    def parsed(
        self, name: str, parse: Callable[[str], _Parsed], *, default: _Parsed, problem: str
    ) -> _Parsed:
        """``parse`` the value (``default`` when unset); a ``ValueError`` becomes ``problem``."""
        value = self.optional(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            raise SettingError(name, problem) from None

    def url(self, name: str, value: str, *, any_scheme: bool = False) -> str:
        """Check that ``value`` is an absolute https:// URL (http:// on loopback; any scheme if allowed)."""
        parsed = urlsplit(value)
        local = parsed.hostname in ("localhost", "127.0.0.1")
        web = parsed.scheme == "https" or (parsed.scheme == "http" and local)
        if not parsed.scheme or not (parsed.hostname or any_scheme) or not (web or any_scheme):
            raise SettingError(name, "is not an absolute https:// URL")
        if parsed.query or parsed.fragment:
            raise SettingError(name, "must not have a query or a fragment")
        return value

    def matching(self, name: str, pattern: re.Pattern[str], *, default: str) -> str:
        value = self.optional(name) or default
        if not pattern.fullmatch(value):
            raise SettingError(name, f"is not a valid value ({value!r})")
        return value
