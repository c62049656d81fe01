"""What the passkey settings say: the relying party, the origins it accepts, the apps it serves.

Parsed once with the other settings (:func:`shared.settings.load_settings` calls
:func:`parse_passkey_settings`) through the settings' reader; like the rest of
:mod:`shared.settings` it imports nothing of ours but errors, so any module may read it.

=================================  ==========================================================
setting                            meaning
=================================  ==========================================================
``AUTH_PASSKEY_RP_ID``             the relying party id, a domain; unset: passkeys are off
``AUTH_PASSKEY_RP_NAME``           the name authenticators show (default ``AUTH_APP_NAME``)
``AUTH_PASSKEY_ORIGINS``           further web origins, exact ``scheme://host[:port]``
``AUTH_PASSKEY_IOS_APP_IDS``       ``TEAMID.bundle.id`` of each iOS app
``AUTH_PASSKEY_ANDROID_APPS``      ``package.name:FINGERPRINT`` of each Android signing key
``AUTH_PASSKEY_CHALLENGE_SECONDS`` how long a challenge may be answered
``AUTH_MAX_PASSKEYS``              passkeys an account may have
=================================  ==========================================================

The relying party id is never taken from a request: behind a proxy the
``Host`` header is the proxy's business, and a ceremony bound to whatever a
request said would be bound to nothing.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from shared.errors import SettingError
from shared.settings.reader import Reader

__all__ = [
    "AndroidApp",
    "PasskeySettings",
    "android_origin",
    "parse_android_apps",
    "parse_passkey_settings",
]

#: Reads one setting: its value, or ``None`` when it is unset or empty.

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)+")
_IOS_APP_ID = re.compile(r"[A-Z0-9]{10}\.[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_FINGERPRINT = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")
_ANDROID_ORIGIN_PREFIX = "android:apk-key-hash:"
_MAX_CHALLENGE_SECONDS = 3600
#: The account row keeps every credential id in one string property (64 KiB): 20 of the longest fit.
_MAX_PASSKEYS_LIMIT = 20


@dataclass(frozen=True, slots=True)
class AndroidApp:
    """One Android app's signing key: the package and the SHA-256 fingerprint of its certificate."""

    package: str
    fingerprint: bytes

    @property
    def fingerprint_text(self) -> str:
        """The fingerprint as ``keytool`` prints it and ``assetlinks.json`` lists it: ``AB:CD:...``."""
        return ":".join(f"{byte:02X}" for byte in self.fingerprint)

    @property
    def origin(self) -> str:
        """The origin Android's Credential Manager puts in ``clientDataJSON`` for this app."""
        return android_origin(self.fingerprint)


@dataclass(frozen=True, slots=True)
class PasskeySettings:
    """Every passkey setting, validated; ``Settings.passkeys`` is ``None`` while passkeys are off."""

    rp_id: str
    rp_name: str
    #: ``AUTH_PASSKEY_ORIGINS``, as given (``https://<rp id>`` is added by :attr:`origins`).
    web_origins: tuple[str, ...] = ()
    ios_app_ids: tuple[str, ...] = ()
    android_apps: tuple[AndroidApp, ...] = ()
    challenge_lifetime: timedelta = timedelta(seconds=300)
    max_passkeys: int = 10
    origins: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        allowed = [f"https://{self.rp_id}", *self.web_origins, *(app.origin for app in self.android_apps)]
        object.__setattr__(self, "origins", tuple(dict.fromkeys(allowed)))


def android_origin(fingerprint: bytes) -> str:
    """``android:apk-key-hash:`` and the base64url (unpadded) of the certificate's SHA-256 fingerprint."""
    return _ANDROID_ORIGIN_PREFIX + base64.urlsafe_b64encode(fingerprint).decode("ascii").rstrip("=")


def parse_passkey_settings(reader: Reader, *, app_name: str) -> PasskeySettings | None:
    """Parse the passkey settings; ``None`` when ``AUTH_PASSKEY_RP_ID`` is unset (passkeys off).

    The other settings are checked even then, so a typo shows before passkeys are turned on.

    :raises SettingError: a setting is malformed (named).
    """
    read = reader.optional
    origins = tuple(_web_origin(item) for item in reader.listed("AUTH_PASSKEY_ORIGINS"))
    ios = tuple(_ios_app_id(item) for item in reader.listed("AUTH_PASSKEY_IOS_APP_IDS"))
    android = parse_android_apps(read("AUTH_PASSKEY_ANDROID_APPS") or "")
    seconds = reader.integer(
        "AUTH_PASSKEY_CHALLENGE_SECONDS", default=300, minimum=1, maximum=_MAX_CHALLENGE_SECONDS
    )
    most = reader.integer("AUTH_MAX_PASSKEYS", default=10, minimum=1, maximum=_MAX_PASSKEYS_LIMIT)
    rp_name = read("AUTH_PASSKEY_RP_NAME") or app_name
    raw_rp_id = read("AUTH_PASSKEY_RP_ID")
    if raw_rp_id is None:
        return None
    return PasskeySettings(
        rp_id=_rp_id(raw_rp_id),
        rp_name=rp_name,
        web_origins=origins,
        ios_app_ids=ios,
        android_apps=android,
        challenge_lifetime=timedelta(seconds=seconds),
        max_passkeys=most,
    )


def parse_android_apps(value: str) -> tuple[AndroidApp, ...]:
    """Parse ``package.name:AB:CD:...`` pairs (comma-separated; each split at its first colon).

    :raises SettingError: (``AUTH_PASSKEY_ANDROID_APPS``) a pair is malformed.
    """
    apps = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        package, _, fingerprint = item.partition(":")
        if not _PACKAGE.fullmatch(package):
            raise SettingError("AUTH_PASSKEY_ANDROID_APPS", f"has no valid package name in {item[:60]!r}")
        if not _FINGERPRINT.fullmatch(fingerprint.strip()):
            raise SettingError(
                "AUTH_PASSKEY_ANDROID_APPS",
                f"has a fingerprint for {package} that is not keytool's SHA-256 (32 hex pairs, colons)",
            )
        apps.append(AndroidApp(package, bytes.fromhex(fingerprint.strip().replace(":", ""))))
    return tuple(dict.fromkeys(apps))


def _rp_id(value: str) -> str:
    rp_id = value.strip().lower()
    if not _DOMAIN.fullmatch(rp_id) or rp_id.rsplit(".", 1)[-1].isdigit():
        raise SettingError("AUTH_PASSKEY_RP_ID", "is not a domain name (no scheme, port or path)")
    return rp_id


def _web_origin(value: str) -> str:
    parsed = urlsplit(value)
    try:
        parsed.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise SettingError("AUTH_PASSKEY_ORIGINS", f"has a malformed port in {value!r}") from None
    local = parsed.hostname in ("localhost", "127.0.0.1")
    secure = parsed.scheme == "https" or (parsed.scheme == "http" and local)
    exact = f"{parsed.scheme}://{parsed.netloc}" == value and parsed.netloc.lower() == parsed.netloc
    if not parsed.hostname or not secure or not exact:
        raise SettingError(
            "AUTH_PASSKEY_ORIGINS",
            f"has {value!r}, not an origin (https://host[:port] in lower case, http:// only on localhost)",
        )
    return value


def _ios_app_id(value: str) -> str:
    if not _IOS_APP_ID.fullmatch(value):
        raise SettingError("AUTH_PASSKEY_IOS_APP_IDS", f"has {value!r}, not TEAMID.bundle.id")
    return value
